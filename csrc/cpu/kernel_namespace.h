// For the kernel files and their headers only: they are compiled once per CPU capability
// (capability.h), and their code lives in `namespace atrous::cpu::inline ATROUS_CPU_CAPABILITY`,
// so the copies of one function for two instruction sets never share a symbol.
#pragma once

#ifndef ATROUS_CPU_CAPABILITY
#error "a CPU kernel header in a file built once: kernel files are built once per CPU capability (csrc/cpu/capability.h)"
#endif
