;; echo.wat: calls every host function and echoes what it got in headers.
;;   init:    keeps a copy of its encoded config
;;   message: logs "hello from echo" at info, writes a short and a 3000-byte
;;            line to stdout, and answers with the headers
;;              X-Now:    now() in decimal
;;              X-Macro:  the value of macro "i", or "absent"
;;              X-Stamp:  the encoded stamp in hex, or "absent"
;;              X-Config: the encoded config in hex
;;            asking each host function for the length first (cap 0), then
;;            again with a buffer of that size.
;;   helo:    writes 100 lines to stdout (the host caps lines per call).
(module
  (import "wasmilter" "log" (func $log (param i32 i32 i32)))
  (import "wasmilter" "now" (func $now (result i64)))
  (import "wasmilter" "macro" (func $macro (param i32 i32 i32 i32) (result i32)))
  (import "wasmilter" "stamp" (func $stamp (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)

  ;; Memory map: 16.. constants; 4096 the answer; 8192 a header value being
  ;; built; 12288 host function output; 16000 an iovec; 20000 a long line;
  ;; 24576 the config copy; 65536 the exchange buffer.
  (global $opos (mut i32) (i32.const 4096))
  (global $vpos (mut i32) (i32.const 8192))
  (global $config_len (mut i32) (i32.const 0))

  (data (i32.const 16) "hello from echo")
  (data (i32.const 32) "X-Now")
  (data (i32.const 40) "X-Macro")
  (data (i32.const 48) "X-Stamp")
  (data (i32.const 56) "X-Config")
  (data (i32.const 64) "absent")
  (data (i32.const 72) "i")
  (data (i32.const 80) "0123456789abcdef")
  (data (i32.const 96) "echo stdout line\n")
  (data (i32.const 120) "spam\n")

  (func (export "wasmilter_abi_version") (result i32) (i32.const 1))
  (func (export "wasmilter_buffer") (param $size i32) (result i32)
    (if (result i32) (i32.gt_u (local.get $size) (i32.const 65536))
      (then (i32.const 0)) (else (i32.const 65536))))
  (func (export "wasmilter_init") (param $len i32) (result i64)
    (memory.copy (i32.const 24576) (i32.const 65536) (local.get $len))
    (global.set $config_len (local.get $len))
    (i64.const 0))

  ;; --- building the answer ---
  (func $put_byte (param $b i32)
    (i32.store8 (global.get $opos) (local.get $b))
    (global.set $opos (i32.add (global.get $opos) (i32.const 1))))
  (func $put_bytes (param $p i32) (param $n i32)
    (memory.copy (global.get $opos) (local.get $p) (local.get $n))
    (global.set $opos (i32.add (global.get $opos) (local.get $n))))
  (func $put_uvarint (param $v i32)
    (block $last
      (loop $more
        (br_if $last (i32.lt_u (local.get $v) (i32.const 128)))
        (call $put_byte (i32.or (i32.and (local.get $v) (i32.const 0x7f)) (i32.const 0x80)))
        (local.set $v (i32.shr_u (local.get $v) (i32.const 7)))
        (br $more)))
    (call $put_byte (local.get $v)))
  (func $uvarint_len (param $v i32) (result i32)
    (local $n i32)
    (local.set $n (i32.const 1))
    (block $last
      (loop $more
        (br_if $last (i32.lt_u (local.get $v) (i32.const 128)))
        (local.set $v (i32.shr_u (local.get $v) (i32.const 7)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $more)))
    (local.get $n))
  ;; add_header appends action field: tag 5, length, kind 1 (add_header),
  ;; index 0, name, value, 0 arguments.
  (func $add_header (param $name i32) (param $nlen i32) (param $val i32) (param $vlen i32)
    (call $put_byte (i32.const 5))
    (call $put_uvarint
      (i32.add (i32.const 3)
        (i32.add (i32.add (call $uvarint_len (local.get $nlen)) (local.get $nlen))
                 (i32.add (call $uvarint_len (local.get $vlen)) (local.get $vlen)))))
    (call $put_byte (i32.const 1))
    (call $put_byte (i32.const 0))
    (call $put_uvarint (local.get $nlen))
    (call $put_bytes (local.get $name) (local.get $nlen))
    (call $put_uvarint (local.get $vlen))
    (call $put_bytes (local.get $val) (local.get $vlen))
    (call $put_byte (i32.const 0)))

  ;; --- building a header value at $vpos ---
  (func $val_byte (param $b i32)
    (i32.store8 (global.get $vpos) (local.get $b))
    (global.set $vpos (i32.add (global.get $vpos) (i32.const 1))))
  (func $val_decimal (param $v i64)
    (if (i64.ge_u (local.get $v) (i64.const 10))
      (then (call $val_decimal (i64.div_u (local.get $v) (i64.const 10)))))
    (call $val_byte (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10))))))
  (func $val_hex (param $p i32) (param $n i32)
    (local $b i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $b (i32.load8_u (local.get $p)))
        (call $val_byte (i32.load8_u (i32.add (i32.const 80) (i32.shr_u (local.get $b) (i32.const 4)))))
        (call $val_byte (i32.load8_u (i32.add (i32.const 80) (i32.and (local.get $b) (i32.const 15)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $more))))
  (func $add_value_header (param $name i32) (param $nlen i32)
    (call $add_header (local.get $name) (local.get $nlen)
      (i32.const 8192) (i32.sub (global.get $vpos) (i32.const 8192)))
    (global.set $vpos (i32.const 8192)))

  (func $stdout (param $p i32) (param $n i32)
    (i32.store (i32.const 16000) (local.get $p))
    (i32.store (i32.const 16004) (local.get $n))
    (drop (call $fd_write (i32.const 1) (i32.const 16000) (i32.const 1) (i32.const 16008))))

  (func (export "wasmilter_on_helo") (param $len i32) (result i64)
    (local $i i32)
    (loop $more
      (call $stdout (i32.const 120) (i32.const 5))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 100))))
    (i64.const 0))

  (func (export "wasmilter_on_message") (param $len i32) (result i64)
    (local $r i32)
    (global.set $opos (i32.const 4096))
    (global.set $vpos (i32.const 8192))
    (call $log (i32.const 1) (i32.const 16) (i32.const 15))
    (call $stdout (i32.const 96) (i32.const 17))
    (memory.fill (i32.const 20000) (i32.const 120) (i32.const 3000)) ;; 'x'
    (i32.store8 (i32.const 23000) (i32.const 10))
    (call $stdout (i32.const 20000) (i32.const 3001))

    (call $val_decimal (call $now))
    (call $add_value_header (i32.const 32) (i32.const 5))

    (local.set $r (call $macro (i32.const 72) (i32.const 1) (i32.const 12288) (i32.const 0)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (call $add_header (i32.const 40) (i32.const 7) (i32.const 64) (i32.const 6)))
      (else
        (drop (call $macro (i32.const 72) (i32.const 1) (i32.const 12288) (local.get $r)))
        (call $add_header (i32.const 40) (i32.const 7) (i32.const 12288) (local.get $r))))

    (local.set $r (call $stamp (i32.const 12288) (i32.const 0)))
    (if (i32.lt_s (local.get $r) (i32.const 0))
      (then (call $add_header (i32.const 48) (i32.const 7) (i32.const 64) (i32.const 6)))
      (else
        (drop (call $stamp (i32.const 12288) (local.get $r)))
        (call $val_hex (i32.const 12288) (local.get $r))
        (call $add_value_header (i32.const 48) (i32.const 7))))

    (call $val_hex (i32.const 24576) (global.get $config_len))
    (call $add_value_header (i32.const 56) (i32.const 8))

    (i64.or (i64.shl (i64.const 4096) (i64.const 32))
            (i64.extend_i32_u (i32.sub (global.get $opos) (i32.const 4096)))))
)
