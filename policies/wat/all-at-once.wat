;; all-at-once: a policy written by hand in WebAssembly text, to show that ABI v1 is
;; language-neutral (no SDK, no Rust). It ships as `builtin:all-at-once`; the host compiles the
;; text at load through wasmtime's `wat` support (see plugin/src/policy/source.rs).
;;
;; Decision: for a one-service release, `complete` with all traffic of that service to the canary.
;; It does not parse JSON: it finds the first service name after `"services":[{"name":"` (the
;; host writes compact JSON in field order) and pastes it into a fixed decision.
(module
  (import "canary" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))

  (@custom "canary.metadata" "{\"name\":\"all-at-once\",\"version\":\"0.1.0\",\"description\":\"Written in WAT: all traffic of a one-service release to the canary at once\",\"abi\":1,\"config_schema\":{\"type\":\"object\"}}")

  ;; constant strings: (offset, length)
  (data (i32.const 64) "\"services\":[{\"name\":\"")    ;; pattern, 21 bytes
  (data (i32.const 128) "{\"action\":\"complete\",\"stage\":{\"index\":0,\"name\":\"100%\",\"routes\":{\"")   ;; prefix, 65 bytes
  (data (i32.const 256) "\":[{\"to\":[{\"subset\":\"canary\",\"weight\":100}]}]}},\"reason\":\"all-at-once: all traffic to the canary\"}")   ;; suffix, 98 bytes
  (data (i32.const 512) "{\"action\":\"hold\",\"reason\":\"all-at-once: the input names no service\"}")  ;; hold, 68 bytes
  (data (i32.const 768) "all-at-once: sending all traffic of the first service to the canary") ;; log line, 67 bytes

  (func (export "canary_abi_version") (result i32) (i32.const 1))

  ;; A bump allocator: every decision runs in a fresh instance, so nothing is ever freed.
  (func $alloc (export "canary_alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.lt_s
              (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1)))
              (i32.const 0))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func (export "canary_dealloc") (param i32 i32))

  ;; Does the pattern start at $at?
  (func $matches (param $at i32) (result i32)
    (local $i i32)
    (block $no
      (loop $next
        (br_if $no (i32.ne (i32.load8_u (i32.add (local.get $at) (local.get $i)))
                           (i32.load8_u (i32.add (i32.const 64) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (i32.const 21))))
      (return (i32.const 1)))
    (i32.const 0))

  (func (export "canary_decide") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32) (local $last i32) (local $name i32) (local $end i32) (local $out i32) (local $n i32)
    (call $log (i32.const 1) (i32.const 768) (i32.const 67))
    (local.set $last (i32.sub (i32.add (local.get $ptr) (local.get $len)) (i32.const 21)))
    (local.set $i (local.get $ptr))
    (block $found
      (loop $scan
        (if (i32.gt_s (local.get $i) (local.get $last))
          (then (return (i64.or (i64.shl (i64.const 512) (i64.const 32)) (i64.const 68)))))
        (br_if $found (call $matches (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (local.set $name (i32.add (local.get $i) (i32.const 21)))
    (local.set $end (local.get $name))
    (block $done
      (loop $to_quote
        (br_if $done (i32.ge_u (local.get $end) (i32.add (local.get $ptr) (local.get $len))))
        (br_if $done (i32.eq (i32.load8_u (local.get $end)) (i32.const 34)))
        (local.set $end (i32.add (local.get $end) (i32.const 1)))
        (br $to_quote)))
    (local.set $n (i32.sub (local.get $end) (local.get $name)))
    (local.set $out (call $alloc (i32.add (local.get $n) (i32.const 163))))
    (memory.copy (local.get $out) (i32.const 128) (i32.const 65))
    (memory.copy (i32.add (local.get $out) (i32.const 65)) (local.get $name) (local.get $n))
    (memory.copy (i32.add (local.get $out) (i32.add (i32.const 65) (local.get $n))) (i32.const 256) (i32.const 98))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.add (local.get $n) (i32.const 163))))))
