-- Verifier contracts of zero, load, store, accum_store, fill and of register tiles, and the
-- builder's refusals (tests/test_verify.c): case N adds one bad use on the line marked
-- "-- expect N: TEXT", and building it must fail at that line with TEXT in the message.
return {
  name = "verify_moves",
  params = { case = { default = 0, min = 0 } },
  build = function(p)
    local c = p.case
    local x = kf.arg{ name = "x", dtype = "f32", dims = { 8, 16 } }
    local xi = kf.arg{ name = "xi", dtype = "i32", dims = { 8, 16 } }
    local y = kf.arg{ name = "y", dtype = "f32", dims = { 8, 16 }, out = true }
    local x3 = kf.scratch{ name = "x3", dtype = "f32", dims = { 2, 8, 16 } }
    local h = kf.scratch{ name = "h", dtype = "bf16", dims = { 8, 16 } }
    local w = kf.arg{ name = "w", dtype = "u8", dims = { 16, 16 }, layout = "qweight", bits = 8, pack = "n16k4" }
    local r = kf.reg{ name = "r", dtype = "f32", dims = { 1, 16 } }
    local ri = kf.reg{ name = "ri", dtype = "i32", dims = { 1, 16 } }
    kf.loop("i", 0, 8, 1, function(i)
      kf.zero{ dst = r }
      kf.load{ dst = r, src = x:tile({ i, 0 }, { 1, 16 }) }
      kf.store{ dst = y:tile({ i, 0 }, { 1, 16 }), src = r }
      kf.fill{ dst = x3:tile({ 0, i, 0 }, { 1, 1, 16 }), value = 0 }
      if c == 1 then kf.zero{ dst = x } end -- expect 1: zero: operand 'dst' ('x') must be a register tile (kf.reg)
      if c == 2 then kf.load{ dst = x, src = y } end -- expect 2: load: operand 'dst' ('x') must be a register tile
      if c == 3 then kf.load{ dst = r, src = xi:tile({ i, 0 }, { 1, 16 }) } end -- expect 3: load: memory operand 'xi' is i32, register tile 'r' is f32
      if c == 4 then kf.load{ dst = r, src = x3:tile({ 0, i, 0 }, { 1, 1, 16 }) } end -- expect 4: load: operand 'src' ('x3') must have rank 2, it has 3
      if c == 5 then kf.store{ dst = x:tile({ i, 0 }, { 1, 16 }), src = r } end -- expect 5: store: operand 'dst' is written, but 'x' is an input argument
      if c == 6 then kf.store{ dst = y, src = y } end -- expect 6: store: operand 'src' ('y') must be a register tile
      if c == 7 then kf.accum_store{ dst = y:tile({ i, 0 }, { 1, 16 }), src = ri } end -- expect 7: accum_store: memory operand 'y' is f32, register tile 'ri' is i32
      if c == 8 then kf.accum_store{ dst = h:tile({ i, 0 }, { 1, 16 }), src = r } end -- expect 8: accum_store: operand 'dst' ('h') must be i32 or f32, it is bf16
      if c == 9 then kf.fill{ dst = r, value = 0 } end -- expect 9: fill: operand 'dst' ('r') must be a memory buffer (kf.arg or kf.scratch)
      if c == 10 then kf.fill{ dst = h, value = 1 } end -- expect 10: fill: operand 'dst' ('h') must be i32 or f32, it is bf16
      if c == 11 then kf.fill{ dst = y } end -- expect 11: fill: missing field 'value' (a number)
      if c == 12 then kf.fill{ dst = x3, value = 0 } end -- expect 12: fill: operand 'dst' ('x3') is a matrix: its tile needs extent 1 in dim 0, it has 2
      if c == 13 then kf.store{ dst = w, src = r } end -- expect 13: store: operand 'dst' ('w') cannot be quantized weights
      if c == 14 then kf.zero{ dst = r, value = 0 } end -- expect 14: zero: unknown field 'value' (fields: dst)
      if c == 15 then kf.store{ dst = y } end -- expect 15: store: missing operand 'src' (a tile or buffer)
      if c == 16 then kf.load(r) end -- expect 16: load: expected a table kf.load{ ... }
      if c == 17 then kf.fill(y, "zero") end -- expect 17: fill: unexpected argument 2 (string)
      if c == 18 then kf.zero{ dst = 3 } end -- expect 18: dst: expected a tile or buffer, got number
      if c == 19 then kf.store{ [1] = y, src = r } end -- expect 19: store: unknown field number (fields: dst, src)
      if c == 20 then kf.fill(y:tile({ i, 0 }, { 1, 16 }), 0) end
    end)
    if c == 20 then kf.reg{ name = "r3", dtype = "f32", dims = { 1, 2, 16 } } end -- expect 20: register tile 'r3' must be a matrix {rows, cols}, it has rank 3
    if c == 21 then kf.reg{ name = "rb", dtype = "bf16", dims = { 1, 16 } } end -- expect 21: register tile 'rb' must be i32 or f32, it is bf16
    if c == 22 then kf.zero{ dst = r } end
    if c == 22 then kf.mma{ acc = r, a = x, b = w, passes = 0 } end -- expect 22: mma: operand 'a' ('x') must be i8 or bf16, it is f32
  end,
}
