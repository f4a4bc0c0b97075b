-- Stale builder handles (issue 15, fault 4; tests/test_verify.c): tune and lib call build()
-- several times on one Lua state. Case 0 keeps its buffer, tile and loop index in an upvalue;
-- the later cases (built afterwards on the same state, with fewer buffers) use them. Each
-- must be refused on the line marked with an expect comment, never index the new kernel.
local kept = {}
return {
  name = "verify_stale",
  params = { case = { default = 0, min = 0 } },
  build = function(p)
    local c = p.case
    local x = kf.arg{ name = "x", dtype = "f32", dims = { 4, 16 } }
    local r = kf.reg{ name = "r", dtype = "f32", dims = { 1, 16 } }
    local extra = c == 0 and kf.scratch{ name = "extra", dtype = "f32", dims = { 64, 16 } }
    kf.loop("i", 0, 4, 1, function(i)
      kf.load{ dst = r, src = x:tile({ i, 0 }, { 1, 16 }) }
      if c == 0 then kept.buf, kept.tile, kept.ix = extra, extra:tile({ i, 0 }, { 1, 16 }), i end
      if c == 1 then kf.load{ dst = r, src = kept.buf } end -- expect 1: a buffer from an earlier build() (kept in a variable across builds)
      if c == 2 then kf.load{ dst = r, src = kept.tile } end -- expect 2: a tile from an earlier build()
      if c == 3 then kf.load{ dst = r, src = x:tile({ kept.ix, 0 }, { 1, 16 }) } end -- expect 3: an index expression from an earlier build()
      if c == 4 then local j = kept.ix + 1 end -- expect 4: an index expression from an earlier build()
      if c == 5 then local n = kept.buf.name end -- expect 5: a buffer from an earlier build()
      if c == 6 then local t = kept.buf:tile({ 0, 0 }, { 1, 16 }) end -- expect 6: a buffer from an earlier build()
      if c == 7 then kf.loop("j", kept.ix, 4, 1, function() end) end -- expect 7: an index expression from an earlier build()
    end)
  end,
}
