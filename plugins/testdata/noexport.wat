;; noexport.wat: lacks wasmilter_buffer.
(module
  (memory (export "memory") 1)
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
)
