/* Architecture-independent shim: BPF programs use the generic integer types. */
#include <asm-generic/int-ll64.h>
