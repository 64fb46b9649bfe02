;; badversion.wat: speaks ABI version 7.
(module
  (memory (export "memory") 1)
  (func (export "wasmilter_abi_version") (result i32) (i32.const 7))
  (func (export "wasmilter_buffer") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
)
