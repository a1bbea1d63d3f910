;; all-at-once: a policy written by hand in WebAssembly text, to show that ABI v1 is
;; language-neutral (no SDK, no Rust). It ships as `builtin:all-at-once`; the host compiles the
;; text at load through wasmtime's `wat` support (see plugin/src/policy/source.rs).
;;
;; Decision: `complete`, with all traffic of every service of the release to the canary (an
;; `abort` is answered with `rollback`: the host routes everything back to stable). It
;; does not parse JSON into values: it scans the input once for the release's
;; `"services":[`, then walks that list (tracking strings, escapes and nesting depth, so that a
;; label called "name" inside a service is not mistaken for one), and for each service object
;; copies its `name` (the host writes it first, as a DNS label) into the routes of the decision.
;; The decision is written piece by piece with the bump allocator, whose blocks are contiguous.
;; It reads no configuration: its schema accepts only an empty (or omitted) config.
(module
  (import "canary" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))

  (@custom "canary.metadata" "{\"name\":\"all-at-once\",\"version\":\"0.2.0\",\"description\":\"Written in WAT: all traffic of every service of the release to the canary at once\",\"abi\":1,\"config_schema\":{\"type\":\"object\",\"additionalProperties\":false,\"description\":\"all-at-once reads no configuration\"}}")

  ;; constant strings: (offset, length)
  (data (i32.const 64) "\"services\":[")     ;; services pattern, 12 bytes
  (data (i32.const 96) "\"name\":\"")     ;; name key, 8 bytes
  (data (i32.const 128) "{\"action\":\"complete\",\"stage\":{\"index\":0,\"name\":\"100%\",\"routes\":{")     ;; prefix, 64 bytes
  (data (i32.const 256) "\":[{\"to\":[{\"subset\":\"canary\",\"weight\":100}]}]")     ;; per-service routes after the name, 45 bytes
  (data (i32.const 320) "}},\"reason\":\"all-at-once: all traffic of every service to the canary\"}")     ;; suffix, 70 bytes
  (data (i32.const 512) "{\"action\":\"hold\",\"reason\":\"all-at-once: the input names no service\"}")     ;; hold, 68 bytes
  (data (i32.const 768) "all-at-once: sending all traffic of every service to the canary")     ;; log line, 63 bytes
  (data (i32.const 896) "\"event\":\"abort\"")     ;; abort pattern, 15 bytes
  (data (i32.const 1024) "{\"action\":\"rollback\",\"reason\":\"all-at-once: aborted by operator, all traffic to stable\"}")     ;; rollback, 88 bytes

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

  ;; Do the $n bytes at $at equal those at $pat, without reading past $limit?
  (func $equals (param $at i32) (param $pat i32) (param $n i32) (param $limit i32) (result i32)
    (local $i i32)
    (if (i32.gt_u (i32.add (local.get $at) (local.get $n)) (local.get $limit))
      (then (return (i32.const 0))))
    (block $no
      (loop $next
        (br_if $no (i32.ne (i32.load8_u (i32.add (local.get $at) (local.get $i)))
                           (i32.load8_u (i32.add (local.get $pat) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (local.get $n))))
      (return (i32.const 1)))
    (i32.const 0))

  ;; Where the $n bytes at $pat first occur in $from..$end, or -1.
  (func $find (param $pat i32) (param $n i32) (param $from i32) (param $end i32) (result i32)
    (local $i i32)
    (local.set $i (local.get $from))
    (block $none
      (loop $scan
        (br_if $none (i32.gt_u (i32.add (local.get $i) (local.get $n)) (local.get $end)))
        (if (call $equals (local.get $i) (local.get $pat) (local.get $n) (local.get $end))
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i32.const -1))

  ;; Append $n bytes from $src to the decision (the next block of the bump allocator).
  (func $emit (param $src i32) (param $n i32)
    (memory.copy (call $alloc (local.get $n)) (local.get $src) (local.get $n)))

  (func (export "canary_decide") (param $ptr i32) (param $len i32) (result i64)
    (local $end i32) (local $i i32) (local $c i32) (local $depth i32) (local $in_string i32)
    (local $name i32) (local $name_end i32) (local $out i32) (local $count i32)
    (call $log (i32.const 1) (i32.const 768) (i32.const 63))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    ;; An abort is a rollback to stable (the host's baseline stage), said in our own words.
    ;; The host writes `event` second: `{"abi":1,"event":"abort",...`; look only there.
    (if (i32.ge_s (call $find (i32.const 896) (i32.const 15) (local.get $ptr)
                   (select (local.get $end) (i32.add (local.get $ptr) (i32.const 32))
                           (i32.lt_u (local.get $len) (i32.const 32)))) (i32.const 0))
      (then (return (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 88)))))
    ;; Find the release's services list (the first one: `release` comes before `config`).
    (local.set $i (call $find (i32.const 64) (i32.const 12) (local.get $ptr) (local.get $end)))
    (if (i32.lt_s (local.get $i) (i32.const 0))
      (then (return (i64.or (i64.shl (i64.const 512) (i64.const 32)) (i64.const 68)))))
    (local.set $i (i32.add (local.get $i) (i32.const 12)))
    (local.set $out (global.get $heap))
    (call $emit (i32.const 128) (i32.const 64))
    ;; Walk the list: depth 0 is inside `[`, depth 1 inside a service object.
    (block $done
      (loop $walk
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $i)))
        (if (local.get $in_string)
          (then
            (if (i32.eq (local.get $c) (i32.const 92))            ;; backslash: skip the next byte
              (then (local.set $i (i32.add (local.get $i) (i32.const 1))))
              (else (if (i32.eq (local.get $c) (i32.const 34))    ;; closing quote
                (then (local.set $in_string (i32.const 0)))))))
          (else
            (if (i32.eq (local.get $c) (i32.const 34))
              (then (local.set $in_string (i32.const 1))))
            (if (i32.or (i32.eq (local.get $c) (i32.const 123)) (i32.eq (local.get $c) (i32.const 91)))
              (then
                (local.set $depth (i32.add (local.get $depth) (i32.const 1)))
                ;; A service object opens: its first member is "name":"<name>".
                (if (i32.and (i32.eq (local.get $c) (i32.const 123)) (i32.eq (local.get $depth) (i32.const 1)))
                  (then
                    (if (call $equals (i32.add (local.get $i) (i32.const 1)) (i32.const 96) (i32.const 8) (local.get $end))
                      (then
                        (local.set $name (i32.add (local.get $i) (i32.const 9)))
                        (local.set $name_end (local.get $name))
                        (block $name_done
                          (loop $to_quote
                            (br_if $name_done (i32.ge_u (local.get $name_end) (local.get $end)))
                            (br_if $name_done (i32.eq (i32.load8_u (local.get $name_end)) (i32.const 34)))
                            (local.set $name_end (i32.add (local.get $name_end) (i32.const 1)))
                            (br $to_quote)))
                        (if (local.get $count)
                          (then (i32.store8 (call $alloc (i32.const 1)) (i32.const 44))))   ;; ","
                        (i32.store8 (call $alloc (i32.const 1)) (i32.const 34))            ;; "\""
                        (call $emit (local.get $name) (i32.sub (local.get $name_end) (local.get $name)))
                        (call $emit (i32.const 256) (i32.const 45))
                        (local.set $count (i32.add (local.get $count) (i32.const 1)))))))))
            (if (i32.or (i32.eq (local.get $c) (i32.const 125)) (i32.eq (local.get $c) (i32.const 93)))
              (then
                ;; The list's own `]` ends the walk.
                (br_if $done (i32.eqz (local.get $depth)))
                (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $walk)))
    (if (i32.eqz (local.get $count))
      (then (return (i64.or (i64.shl (i64.const 512) (i64.const 32)) (i64.const 68)))))
    (call $emit (i32.const 320) (i32.const 70))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.sub (global.get $heap) (local.get $out))))))
