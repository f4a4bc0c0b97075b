-- Verifier contracts of the attention decode ops: qk, softmax, rescale, rescale_exp2, pv,
-- scale_cols, finalize (tests/test_verify.c): case N adds one bad use on the line marked
-- "-- expect N: TEXT".
return {
  name = "verify_attention",
  params = { case = { default = 0, min = 0 } },
  build = function(p)
    local c = p.case
    local q = kf.arg{ name = "q", dtype = "bf16", dims = { 2, 16 } }
    local kv = kf.arg{ name = "kv", dtype = "bf16", dims = { 1, 64, 16 } }
    local kv2 = kf.arg{ name = "kv2", dtype = "bf16", dims = { 2, 64, 16 } }
    local xin = kf.arg{ name = "xin", dtype = "f32", dims = { 2, 16 } }
    local out = kf.arg{ name = "out", dtype = "f32", dims = { 2, 16 }, out = true }
    local s = kf.scratch{ name = "s", dtype = "f32", dims = { 2, 32 } }
    local s1 = kf.scratch{ name = "s1", dtype = "f32", dims = { 1, 32 } }
    local sb = kf.scratch{ name = "sb", dtype = "bf16", dims = { 2, 32 } }
    local o = kf.scratch{ name = "o", dtype = "f32", dims = { 2, 16 } }
    local m = kf.scratch{ name = "m", dtype = "f32", dims = { 2 } }
    local l = kf.scratch{ name = "l", dtype = "f32", dims = { 2 } }
    local al = kf.scratch{ name = "al", dtype = "f32", dims = { 2 } }
    local n = kf.scratch{ name = "n", dtype = "f32", dims = { 2 } }
    local n3 = kf.scratch{ name = "n3", dtype = "f32", dims = { 3 } }
    local add = kf.scratch{ name = "add", dtype = "i32", dims = { 2 } }
    local qf = kf.scratch{ name = "qf", dtype = "f32", dims = { 2, 16 } }
    local qi = kf.scratch{ name = "qi", dtype = "i32", dims = { 2, 16 } }
    local sc = kf.scratch{ name = "sc", dtype = "f32", dims = { 1, 16 } }
    local r = kf.reg{ name = "r", dtype = "f32", dims = { 2, 16 } }
    kf.fill{ dst = m, value = -math.huge }
    kf.fill{ dst = l, value = 0 }
    kf.fill{ dst = o, value = 0 }
    kf.fill{ dst = sc, value = 1 }
    kf.scale_cols{ dst = qf, src = q, scales = sc, factor = 0.25 }
    kf.loop("j0", 0, 64, 32, function(j0)
      local len = kf.min(64 - j0, 32)
      local kt = kv:tile({ 0, j0, 0 }, { 1, 32, 16 })
      kf.qk{ s = s, q = q, k = kt, scale = 0.25, len = len }
      kf.softmax{ s = s, m = m, l = l, alpha = al, len = len }
      kf.rescale{ o = o, alpha = al }
      kf.pv{ o = o, p = s, v = kt, len = len, mr = 2 }
      if c == 1 then kf.qk{ s = sb, q = q, k = kt, len = len } end -- expect 1: qk: operand 's' ('sb') must be f32, it is bf16
      if c == 2 then kf.qk{ s = s, q = qf, k = kt, len = len } end -- expect 2: qk: operand 'q' ('qf') must be bf16, it is f32
      if c == 3 then kf.qk{ s = s, q = q, k = kv:tile({ 0, j0, 0 }, { 1, 32, 8 }), len = len } end -- expect 3: qk: q and k have different head dims (16, 8)
      if c == 4 then kf.qk{ s = o, q = q, k = kt, len = len } end -- expect 4: qk: s must be {rows of q, keys of k} = {2, >= 32}, it is {2, 16}
      if c == 5 then kf.qk{ s = s, q = q, k = kt, len = 40 } end -- expect 5: qk: len can be 40, more than the 32 keys of k
      if c == 6 then kf.qk{ s = s, q = q, k = kt } end -- expect 6: qk: missing field 'len' (valid keys of the block)
      if c == 7 then kf.qk{ s = s, q = q, k = kv2:tile({ 0, j0, 0 }, { 2, 32, 16 }), len = len } end -- expect 7: qk: operand 'k' ('kv2') is a matrix: its tile needs extent 1 in dim 0, it has 2
      if c == 8 then kf.softmax{ s = s, m = m, l = l, alpha = al, len = len, amla = true } end -- expect 8: softmax: amla needs the operands n and add
      if c == 9 then kf.softmax{ s = s, m = m, l = l, alpha = al, add = add, len = len } end -- expect 9: softmax: 'add' is given without 'n'
      if c == 10 then kf.softmax{ s = s, m = n3, l = l, alpha = al, len = len } end -- expect 10: softmax: 'm' ('n3') needs one value per row of s (2 rows), it has 3
      if c == 11 then kf.softmax{ s = s, m = m, l = l, alpha = al, n = n, add = l, len = len, amla = 1 } end -- expect 11: softmax: operand 'add' ('l') must be i32, it is f32
      if c == 12 then kf.softmax{ s = s, m = m, l = l, alpha = al, len = len, amla = 2 } end -- expect 12: softmax: amla must be 0 or 1 (false or true), got 2
      if c == 13 then kf.softmax{ s = s, m = m, l = l, alpha = al, len = 64 - j0 } end -- expect 13: softmax: len can be 64, more than the 32 keys of s
      if c == 14 then kf.rescale{ o = o, alpha = add } end -- expect 14: rescale: operand 'alpha' ('add') must be f32, it is i32
      if c == 15 then kf.rescale{ o = o, alpha = n3 } end -- expect 15: rescale: 'alpha' ('n3') needs one value per row of o (2 rows), it has 3
      if c == 16 then kf.rescale_exp2{ o = o, add = al } end -- expect 16: rescale_exp2: operand 'add' ('al') must be i32, it is f32
      if c == 17 then kf.rescale{ o = r, alpha = al } end -- expect 17: rescale: operand 'o' ('r') must be a memory buffer (kf.arg or kf.scratch)
      if c == 18 then kf.pv{ o = o, p = s, v = o, len = len } end -- expect 18: pv: operand 'v' ('o') must be bf16, it is f32
      if c == 19 then kf.pv{ o = o, p = s, v = kv:tile({ 0, j0, 0 }, { 1, 32, 8 }), len = len } end -- expect 19: pv: o and v need the same column count (got 16, 8)
      if c == 20 then kf.pv{ o = o, p = s1, v = kt, len = len } end -- expect 20: pv: p needs the rows of o (2), it has 1
      if c == 21 then kf.pv{ o = o, p = s:tile({ 0, 0 }, { 2, 16 }), v = kt, len = len } end -- expect 21: pv: len can be 32, more than the 16 keys of p
      if c == 22 then kf.pv{ o = o, p = s, v = kv:tile({ 0, j0, 0 }, { 1, 16, 16 }), len = len } end -- expect 22: pv: len can be 32, more than the 16 keys of v
      if c == 23 then kf.pv{ o = o, p = s, v = kt, len = len, mr = 16 } end -- expect 23: pv: mr must be in 0..8, got 16
      if c == 24 then kf.pv{ o = o, p = s, v = kt, len = len, MR = 2 } end -- expect 24: pv: unknown field 'MR' (fields: o, p, v, mr, len)
      if c == 25 then kf.pv{ o = o, p = s, v = kt, len = kf.min(j0 - 64, 8) } end -- expect 25: pv: len can be negative
    end)
    if c == 26 then kf.scale_cols{ dst = qf, src = qi, scales = sc } end -- expect 26: scale_cols: operand 'src' ('qi') must be f32 or bf16, it is i32
    if c == 27 then kf.scale_cols{ dst = s, src = q, scales = sc } end -- expect 27: scale_cols: dst {2, 32} and src {2, 16} must have the same shape
    if c == 28 then kf.scale_cols{ dst = qf, src = q, scales = o } end -- expect 28: scale_cols: scales must be one row of at least 16 columns, it is {2, 16}
    if c == 29 then kf.scale_cols{ dst = xin, src = q, scales = sc } end -- expect 29: scale_cols: operand 'dst' is written, but 'xin' is an input argument
    if c == 30 then kf.finalize{ out = out, o = o, l = l, m = m } end -- expect 30: finalize: m needs n (AMLA's r_hat)
    if c == 31 then kf.finalize{ out = out, o = o, l = l, n = n } end -- expect 31: finalize: 'n' is given without 'm'
    if c == 32 then kf.finalize{ out = s, o = o, l = l } end -- expect 32: finalize: out {2, 32} and o {2, 16} shapes differ
    if c == 33 then kf.finalize{ out = out, o = o, l = n3 } end -- expect 33: finalize: 'l' ('n3') needs one value per row of o (2 rows), it has 3
    if c == 34 then kf.finalize{ out = out, o = o, l = l, guard = 3 } end -- expect 34: finalize: guard must be 0 or 1 (false or true), got 3
    if c == 35 then kf.fill{ dst = o, value = "x" } end -- expect 35: field 'value' must be a number
    if c == 36 then kf.fill{ dst = o:tile({ 1, 0 }, { 2, 16 }), value = 0 } end -- expect 36: fill: operand 'dst': the tile of 'o' (offset up to 1, extent 2) runs past its size 2 in dim 0 (this operand is not clamped)
    if c == 37 then kf.scale_cols{ dst = qf, src = q:tile({ 0, 8 }, { 2, 16 }), scales = sc } end -- expect 37: scale_cols: operand 'src': the tile of 'q' (offset up to 8, extent 16) runs past its size 16 in dim 1
    kf.finalize{ out = out, o = o, l = l, m = m, n = n, guard = true }
  end,
}
