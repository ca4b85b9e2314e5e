// Makes the shared library importable as the Python module atrous._C; the ops themselves are
// registered by static initialisers (TORCH_LIBRARY) when the library is loaded. CMake builds for
// C++ users leave this file out and load the library with torch.ops.load_library or by linking.
#include <Python.h>

extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "atrous kernels (ops are registered under torch.ops.atrous)",
      -1, nullptr};
  return PyModule_Create(&module_def);
}
}
