-- msd_gemm: y = W x with quantized weights (W8 or W4, per channel or per K-group) and
-- BF16 activations, by Multi-Scale Dequant (DESIGN.md section 4): each activation row
-- is split into `passes` int8 parts x ~ sum_p s_p q_p (s1 = max|x|/127, s_{p+1} = s_p/254)
-- that multiply the weight codes directly in int8 (vpdpbusd); the passes are stacked as
-- extra rows of one register tile so every weight panel is loaded once for all of them.
local T = {
  name = "msd_gemm",
  doc = "MSD INT8 GEMM: y[M,N] = x[M,K] (bf16) * W[N,K]^T (int8/int4 codes + scales), activations split into int8 passes",
  reference = "gemm_q",
  key = { "M", "N", "K" },
  params = {
    M = { min = 1 }, N = { min = 1 }, K = { min = 1 },
    bits = { default = 8, domain = { 4, 8 } },
    group = { default = 0, domain = { 0, 32, 64, 128 } },      -- weight scale group (0 = per channel)
    act_group = { default = 0, domain = { 0, 32, 64, 128 } },  -- activation scale group (0 = per row)
  },
  -- kforge lib: dispatch signature order and the generic runtime-shaped kernel (runtime/dispatch)
  lib = {
    params = { "M", "N", "K", "act_group", "bits", "group" },
    fallback = "msd_gemm",
    fallback_args = { "M", "N", "K", "bits", "group", "act_group", "passes", "x", "w", "w_scale", "y" },
  },
  tunables = {
    passes = { default = 2, domain = { 1, 2, 3 }, accuracy = true }, -- ~7.5 bits per pass: kept unless --min-bits
    mr = { default = 4, domain = { 1, 2, 3, 4, 6, 8 } },       -- rows per register tile
    nr = { default = 32, domain = { 16, 32, 48, 64 } },        -- columns per register tile
    nc = { default = 256, domain = { 64, 128, 192, 256, 384, 512, 1024 } }, -- columns per parallel block
    mc = { default = 64, domain = { 16, 24, 32, 48, 64, 96, 128, 256, 512 } }, -- rows per quantized block
    kc = { default = 4096, domain = { 256, 512, 1024, 2048, 4096, 8192 } }, -- int32 span (per channel)
  },
}

local function up(x, m) return (x + m - 1) // m * m end

-- The k-span accumulated in int32 before scaling: a weight or activation scale group,
-- else kc (bounded so int32 cannot overflow: 8 * 255 * 127 per byte-quad... 8192*255*127 < 2^31).
local function span(p, t)
  local Kp = up(p.K, 8)
  -- (a group longer than K is one group: all of K)
  if p.group > 0 then return math.min(p.group, Kp) end
  if p.act_group > 0 then return math.min(p.act_group, Kp) end
  return math.min(t.kc, Kp)
end

function T.constraints(p, t, target)
  -- accumulators: passes*mr int32 rows + mr f32 rows, nr/vl vectors each; plus nr/vl weights
  local nv = t.nr // target.vl
  local vecregs = (t.passes + 1) * t.mr * nv + nv * (p.bits == 4 and 2 or 1) + 1
  if vecregs > target.regs then
    return string.format("register tile needs %d vector registers, %s has %d", vecregs, target.name, target.regs)
  end
  if t.nc % t.nr ~= 0 then return "nc must be a multiple of nr" end
  if p.group > 0 and p.act_group > 0 and p.group ~= p.act_group then
    return "per-group weight and activation scales need the same group"
  end
  if t.mr > p.M and t.mr > 1 then return "mr larger than M" end
  if t.mc < t.mr or t.mc % t.mr ~= 0 then return "mc must be a multiple of mr" end
  -- (mc above M is clamped to M in build: such configurations are equivalent, not wrong)
end

function T.build(p, t)
  local M, N, K, P = p.M, p.N, p.K, t.passes
  local Np, Kp = up(N, 16), up(K, 8)
  local ks = span(p, t)
  local nspan = (Kp + ks - 1) // ks
  local ag = p.act_group
  local nag = ag > 0 and (K + ag - 1) // ag or 1
  local MC = math.min(t.mc, up(M, t.mr))
  local x = kf.arg{ name = "x", dtype = "bf16", dims = { M, K } }
  local w = kf.arg{ name = "w", dtype = "u8", dims = { N, K }, layout = "qweight", bits = p.bits,
                    group = p.group, pack = "n16k4" }
  local wng = p.group > 0 and (K + p.group - 1) // p.group or 1
  local ws = kf.arg{ name = "w_scale", dtype = "f32", dims = { wng, Np } }
  local y = kf.arg{ name = "y", dtype = "f32", dims = { M, N }, out = true }
  local xq = kf.scratch{ name = "xq", dtype = "i8", dims = { P, MC, Kp } }
  local xs = kf.scratch{ name = "xs", dtype = "f32", dims = { P, MC, nag } }
  local xsum = kf.scratch{ name = "xsum", dtype = "i32", dims = { P, MC, nspan } }
  local acci = kf.reg{ name = "acci", dtype = "i32", dims = { P * t.mr, t.nr } }
  local accf = kf.reg{ name = "accf", dtype = "f32", dims = { t.mr, t.nr } }
  local off = p.bits == 8 and 128 or 8
  kf.loop("n0", 0, Np, t.nc, function(n0)
    kf.loop("m0", 0, M, MC, function(m0)
      kf.quantize{ src = x:tile({ m0, 0 }, { MC, K }), codes = xq, scales = xs, sums = xsum,
                   passes = P, act_group = ag, sum_group = ks }
      kf.loop("n1", n0, kf.min(n0 + t.nc, Np), t.nr, function(n1)
        kf.loop("m1", m0, kf.min(m0 + MC, M), t.mr, function(m1)
          kf.zero{ dst = accf }
          kf.loop("g", 0, nspan, 1, function(g)
            kf.zero{ dst = acci }
            kf.mma{ acc = acci, a = xq:tile({ 0, m1 - m0, g * ks }, { P, t.mr, ks }),
                    b = w:tile({ n1, g * ks }, { t.nr, ks }) }
            local wg = p.group > 0 and g or 0
            local sg = ag > 0 and g or 0
            kf.scale_acc{ acc = accf, src = acci, passes = P, offset = off,
                          act_scales = xs:tile({ 0, m1 - m0, sg }, { P, t.mr, 1 }),
                          act_sums = xsum:tile({ 0, m1 - m0, g }, { P, t.mr, 1 }),
                          w_scales = ws:tile({ wg, n1 }, { 1, t.nr }) }
          end)
          kf.store{ dst = y:tile({ m1, n1 }, { t.mr, t.nr }), src = accf }
        end)
      end)
    end)
  end, { parallel = true })
end

return T
