;; sandbox.wat: at the message hook, tries what a plugin must not be able to
;; do through WASI and stores each result as an i32 for the test to read:
;;   256 path_open(3, "/etc/passwd") errno    260 path_open(4, ...) errno
;;   264 fd_prestat_get(3) errno              268 sock_accept(3) errno
;;   272 sock_accept(0) errno                 276 sock_recv(3) errno
;;   280 sock_send(3) errno                   284 sock_shutdown(3) errno
;;   288 fd_read(3) errno                     292 environ_sizes_get count
;;   296 args_sizes_get count
;; fd 3 is where a preopened directory or a listening socket would be; the
;; host gives plugins neither. Answers continue.
(module
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func $sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_shutdown" (func $sock_shutdown (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "/etc/passwd")
  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0)) (else (i32.const 65536))))
  (func (export "wasmilter_init") (param $len i32) (result i64) (i64.const 0))
  (func (export "wasmilter_on_message") (param $len i32) (result i64)
    ;; an iovec at 512 pointing at 1024..2048, scratch results at 600..
    (i32.store (i32.const 512) (i32.const 1024))
    (i32.store (i32.const 516) (i32.const 1024))
    (i32.store (i32.const 256)
      (call $path_open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 11) (i32.const 0)
        (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 600)))
    (i32.store (i32.const 260)
      (call $path_open (i32.const 4) (i32.const 0) (i32.const 16) (i32.const 11) (i32.const 0)
        (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 600)))
    (i32.store (i32.const 264) (call $fd_prestat_get (i32.const 3) (i32.const 600)))
    (i32.store (i32.const 268) (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 600)))
    (i32.store (i32.const 272) (call $sock_accept (i32.const 0) (i32.const 0) (i32.const 600)))
    (i32.store (i32.const 276)
      (call $sock_recv (i32.const 3) (i32.const 512) (i32.const 1) (i32.const 0) (i32.const 600) (i32.const 604)))
    (i32.store (i32.const 280)
      (call $sock_send (i32.const 3) (i32.const 512) (i32.const 1) (i32.const 0) (i32.const 600)))
    (i32.store (i32.const 284) (call $sock_shutdown (i32.const 3) (i32.const 3)))
    (i32.store (i32.const 288) (call $fd_read (i32.const 3) (i32.const 512) (i32.const 1) (i32.const 600)))
    (drop (call $environ_sizes_get (i32.const 292) (i32.const 608)))
    (drop (call $args_sizes_get (i32.const 296) (i32.const 612)))
    (i64.const 0))
)
