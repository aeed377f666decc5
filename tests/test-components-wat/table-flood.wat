;; init grows a funcref table by 2^30 elements.
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  ;; init: the flood, then ok (result<_, string> discriminant 0).
  (func (export "ytdlp:proxy/backend@0.1.0#init") (param i32 i32) (result i32)
    (drop (table.grow $t (ref.null func) (i32.const 0x40000000)))
    (i32.store8 (i32.const 16) (i32.const 0))
    (i32.const 16))
  ;;ABI
)
