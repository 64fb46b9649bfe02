;; initcalltrap.wat: _initialize runs, then wasmilter_init traps (a guest
;; whose configuration code crashes).
(module
  (memory (export "memory") 1)
  (func (export "_initialize"))
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  (func (export "wasmilter_buffer") (param $size i32) (result i32) (i32.const 1024))
  (func (export "wasmilter_init") (param $len i32) (result i64) (unreachable))
)
