-- tt_faulty: a test-only template for the tuner's tests (tuner/tests). The dequant GEMM of
-- templates/dequant_gemm.lua, with two tunables that make variants that are bad on purpose:
--   slow  = 1 | 4 | 16: computes each output tile `slow` times, rep r from x row
--                       min(m1 + slow - 1 - r, M - 1), so the last rep (r = slow - 1) stores the
--                       right row; the other reps use other rows so no compiler can drop them:
--                       ~slow x the work, so the fastest configuration is known by construction;
--   fault = 0: correct
--           1: wrong   (skips the store of the first column tile: outputs stay NaN)
--           2: refused (declares x 2^30 rows larger than M and reads there: the problem for
--                       what it declares does not fit memory, so the trial fails unrun)
--           3: hang    (a loop of 2^40 iterations around the tile: never finishes in time)
local T = {
  name = "tt_faulty",
  doc = "test-only: dequant GEMM with slow/wrong/crashing/hanging variants",
  reference = "gemm_q",
  params = {
    M = { min = 1 }, N = { min = 1 }, K = { min = 1 },
    bits = { default = 8, domain = { 8 } },
    group = { default = 0, domain = { 0 } },
    wround = { default = 0, domain = { 0, 1 } },
  },
  tunables = {
    fault = { default = 0, domain = { 0, 1, 2, 3 } },
    slow = { default = 4, domain = { 1, 4, 16 } },
    nr = { default = 16, domain = { 16, 32 } },
  },
}

local function up(x, m) return (x + m - 1) // m * m end

function T.build(p, t)
  local M, N, K = p.M, p.N, p.K
  local Np = up(N, 16)
  local far = t.fault == 2 and (1 << 30) or 0
  local x = kf.arg{ name = "x", dtype = "bf16", dims = { M + far, K } }
  local w = kf.arg{ name = "w", dtype = "u8", dims = { N, K }, layout = "qweight", bits = p.bits,
                    group = p.group, pack = "n16k1" }
  local ws = kf.arg{ name = "w_scale", dtype = "f32", dims = { 1, Np } }
  local y = kf.arg{ name = "y", dtype = "f32", dims = { M, N }, out = true }
  local acc = kf.reg{ name = "acc", dtype = "f32", dims = { 1, t.nr } }
  local reps = t.fault == 3 and (1 << 40) or t.slow
  -- every rep's result also goes to the workspace (rows 0..15), so no rep is a dead store
  local keep = kf.scratch{ name = "keep", dtype = "f32", dims = { 16, t.nr } }
  kf.loop("n0", 0, Np, t.nr, function(n0)
    kf.loop("m1", 0, M, 1, function(m1)
      kf.loop("r", 0, reps, 1, function(r)
        kf.zero(acc)
        local row = far > 0 and m1 + far or kf.min(m1 + (reps - 1) - r, M - 1)
        kf.mma{ acc = acc, a = x:tile({ row, 0 }, { 1, K }), b = w:tile({ n0, 0 }, { t.nr, K }),
                b_scales = ws:tile({ 0, n0 }, { 1, t.nr }), round_bf16 = p.wround }
        kf.store(keep:tile({ kf.min(r, 15), 0 }, { 1, t.nr }), acc)
      end)
      if t.fault ~= 1 then
        kf.store(y:tile({ m1, n0 }, { 1, t.nr }), acc) -- the last rep: row m1
      end
    end)
  end, { parallel = true })
end

return T
