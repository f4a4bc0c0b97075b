-- Verifier contracts of loops, tiles and register tiles (tests/test_verify.c): case N adds
-- one bad use on the line marked with an expect comment.
return {
  name = "verify_loops",
  params = { case = { default = 0, min = 0 } },
  build = function(p)
    local c = p.case
    local x = kf.arg{ name = "x", dtype = "f32", dims = { 8, 16 } }
    local y = kf.arg{ name = "y", dtype = "f32", dims = { 8, 16 }, out = true }
    local r = kf.reg{ name = "r", dtype = "f32", dims = { 1, 16 } }
    local saved
    kf.loop("i", 0, 8, 1, function(i)
      saved = i
      kf.load{ dst = r, src = x:tile({ i, 0 }, { 1, 16 }) }
      kf.store{ dst = y:tile({ i, 0 }, { 1, 16 }), src = r }
      if c == 1 then kf.load{ dst = r, src = x:tile({ i + 1, 0 }, { 1, 16 }) } end -- expect 1: load: tile of 'x' starts outside the buffer in dim 0 (offset range 1..8, size 8)
      if c == 2 then kf.load{ dst = r, src = x:tile({ i - 1, 0 }, { 1, 16 }) } end -- expect 2: load: tile of 'x' starts outside the buffer in dim 0 (offset range -1..6, size 8)
      if c == 3 then kf.load{ dst = r, src = x:tile({ i, 0 }, { 0, 16 }) } end -- expect 3: load: tile of 'x' has extent 0 in dim 0
      if c == 4 then kf.load{ dst = r:tile({ 0, 0 }, { 1, 8 }), src = x:tile({ i, 0 }, { 1, 16 }) } end -- expect 4: load: register tile 'r' must be used whole
      if c == 5 then kf.loop("p", 0, 2, 1, function() kf.zero{ dst = r } end, { parallel = true }) end -- expect 5: loop 'p': only an outermost loop can be parallel
      if c == 6 then kf.loop("i2", i, 8, 0, function() end) end -- expect 6: loop 'i2': step must be positive, got 0
    end)
    if c == 7 then kf.load{ dst = r, src = x:tile({ saved, 0 }, { 1, 16 }) } end -- expect 7: load: tile of 'x' uses a loop variable outside its loop
    if c == 8 then
      kf.loop("a", 0, 2, 1, function()
        kf.loop("b", 0, 2, 1, function()
          kf.loop("d", 0, 2, 1, function() kf.zero{ dst = r } end, { parallel = true }) -- expect 8: loop 'd': at most two nested loops can be parallel
        end, { parallel = true })
      end, { parallel = true })
    end
    if c == 9 then kf.loop("a", 0, kf.min(saved, 4), 1, function() kf.zero{ dst = r } end) end -- expect 9: loop 'a': bound uses a variable outside its loop
    if c == 10 then
      kf.loop("a", 0, 2, 1, function(a)
        kf.loop("b", a, 4, 1, function() kf.zero{ dst = r } end, { parallel = true }) -- expect 10: loop 'b': only an outermost loop can be parallel
      end)
    end
    if c == 11 then kf.loop("a", 0, 8, 1, function(a) kf.loop("b", kf.min(a, 4), 8, 1, function() end) end) end -- expect 11: loop 'b': the lower bound cannot be a min()
  end,
}
