#include <ffi.h>

/* libffi's type descriptors are global variables; these return their addresses so Swift does
   not have to take the address of an imported C global. */
static inline ffi_type *pag_ffi_type_void(void) { return &ffi_type_void; }
static inline ffi_type *pag_ffi_type_sint32(void) { return &ffi_type_sint32; }
static inline ffi_type *pag_ffi_type_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *pag_ffi_type_float(void) { return &ffi_type_float; }
static inline ffi_type *pag_ffi_type_double(void) { return &ffi_type_double; }
static inline ffi_type *pag_ffi_type_uint8(void) { return &ffi_type_uint8; }
static inline ffi_type *pag_ffi_type_pointer(void) { return &ffi_type_pointer; }
