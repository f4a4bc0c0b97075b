-- Overflow-checked index arithmetic (issue 15, fault 3; tests/test_verify.c): every index
-- value, loop bound and step the verifier accepts is within 2^61 in magnitude, so neither
-- the verifier's range analysis nor i += step in the generated code can wrap. Case N adds
-- one bad use on the line marked with an expect comment.
return {
  name = "verify_index",
  params = { case = { default = 0, min = 0 } },
  build = function(p)
    local c = p.case
    local x = kf.arg{ name = "x", dtype = "f32", dims = { 4, 16 } }
    local y = kf.arg{ name = "y", dtype = "f32", dims = { 4, 16 }, out = true }
    local s = kf.scratch{ name = "s", dtype = "f32", dims = { 4, 16 } }
    local r = kf.reg{ name = "r", dtype = "f32", dims = { 1, 16 } }
    local big = 1 << 40
    kf.loop("i", 0, 3, 1, function(i)
      kf.load{ dst = r, src = x:tile({ i, 0 }, { 1, 16 }) }
      kf.store{ dst = y:tile({ i, 0 }, { 1, 16 }), src = r }
      -- a large but representable offset that cancels: fine
      kf.fill{ dst = s:tile({ (i + big) - big, 0 }, { 1, 16 }), value = 0 }
      if c == 1 then kf.store{ dst = y:tile({ i * 6148914691236517206, 0 }, { 1, 16 }), src = r } end -- expect 1: store: the offset of 'y' in dim 0 can exceed 2^61 in magnitude (int64 overflow)
      if c == 2 then kf.store{ dst = y:tile({ (i + math.maxinteger) + 1, 0 }, { 1, 16 }), src = r } end -- expect 2: index expression overflows int64 (+)
      if c == 3 then kf.store{ dst = y:tile({ i - math.mininteger, 0 }, { 1, 16 }), src = r } end -- expect 3: index expression overflows int64 (-)
      if c == 4 then kf.store{ dst = y:tile({ i * math.mininteger * -1, 0 }, { 1, 16 }), src = r } end -- expect 4: index expression overflows int64 (*)
      if c == 5 then kf.store{ dst = y:tile({ 1e300, 0 }, { 1, 16 }), src = r } end -- expect 5: is not an integer in the int64 range
      if c == 6 then kf.fill{ dst = s:tile({ i, 0 }, { math.maxinteger, 16 }), value = 0 } end -- expect 6: fill: tile of 's' has extent 9223372036854775807 in dim 0, more than 2^61
      if c == 7 then kf.store{ dst = y:tile({ i * (1 << 61), 0 }, { 1, 16 }), src = r } end -- expect 7: store: the offset of 'y' in dim 0 can exceed 2^61 in magnitude (int64 overflow)
      if c == 8 then kf.store{ dst = y:tile({ math.mininteger + 1 - i, 0 }, { 1, 16 }), src = r } end -- expect 8: store: the offset of 'y' in dim 0 can exceed 2^61 in magnitude
    end)
    if c == 9 then kf.loop("j", math.mininteger, 0, 1, function(j) kf.zero{ dst = r } end) end -- expect 9: loop 'j': the lower bound can exceed 2^61 in magnitude (int64 overflow)
    if c == 10 then kf.loop("j", 0, 4, math.maxinteger // 2, function(j) kf.zero{ dst = r } end) end -- expect 10: loop 'j': step 4611686018427387903 is larger than 2^61 (i += step could overflow int64)
    if c == 11 then kf.loop("j", 0, math.maxinteger, 1, function(j) kf.zero{ dst = r } end) end -- expect 11: loop 'j': the upper bound can exceed 2^61 in magnitude (int64 overflow)
    if c == 12 then kf.loop("j", 0, 4, -1, function(j) end) end -- expect 12: loop 'j': step must be positive, got -1
    if c == 13 then
      kf.loop("a", 0, 1 << 31, 1, function()
        kf.loop("b", 0, 1 << 31, 1, function() kf.zero{ dst = r } end, { parallel = true }) -- expect 13: parallel loop 'b': the nested parallel loops have more than 2^61 iterations
      end, { parallel = true })
    end
    if c == 15 then kf.loop("a", 0, 4, 1, function(a) kf.loop("j", 0, kf.min(a + 7, math.mininteger), 1, function(j) kf.zero{ dst = r } end) end) end -- expect 15: loop 'j': the upper bound can exceed 2^61 in magnitude (int64 overflow)
    if c == 14 then kf.loop("j", 0, (1 << 61) - 4, 1 << 61, function(j) kf.zero{ dst = r } end) end
    if c == 14 then kf.loop("k", (1 << 61) - 4, (1 << 61) + 8, 4, function(k) kf.zero{ dst = r } end) end -- expect 14: loop 'k': the upper bound can exceed 2^61
  end,
}
