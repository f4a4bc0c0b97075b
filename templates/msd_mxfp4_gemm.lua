-- msd_mxfp4_gemm: y = W x with MXFP4 weights (E2M1 codes, an E8M0 scale per block of 32
-- along K, as models store them) and BF16 activations decomposed into 1-3 MXFP4 passes
-- (DESIGN.md section 4): pass p quantizes the residual of the passes before it with its own
-- non-clipping block scale 2^ceil(log2(amax/6)), so each pass errs by at most alpha/8 of
-- the block before it. FP4 x FP4 products are exact in int8 after doubling (2*E2M1 in
-- {0,1,2,3,4,6,8,12}): each 32-block is one int8 dot product (vpdpbusd) scaled by
-- 2^(e_x + e_w - 2). The passes are stacked as extra rows of the register tile so W is read
-- once. Weights are stored as models store them, two E2M1 nibbles per byte (n16k4 nibble
-- packing); a 16-entry byte shuffle (vpshufb) decodes them to 128 + 2*value in registers.
local T = {
  name = "msd_mxfp4_gemm",
  doc = "MSD MXFP4 GEMM: y[M,N] = x[M,K] (bf16, 1-3 MXFP4 passes) * W[N,K]^T (MXFP4)",
  reference = "gemm_q",
  key = { "M", "N", "K" },
  params = {
    M = { min = 1 }, N = { min = 1 }, K = { min = 1 },
    wfmt = { default = 1, domain = { 1 } }, -- weights: MXFP4
    afmt = { default = 1, domain = { 1 } }, -- activation passes: MXFP4
  },
  lib = {
    params = { "M", "N", "K", "wfmt", "afmt" },
    no_fallback = "MXFP4 activation passes have no runtime-shaped generic kernel: shapes outside the tuned list return -2",
  },
  tunables = {
    passes = { default = 2, domain = { 1, 2, 3 }, accuracy = true }, -- ~7.5 bits per pass: kept unless --min-bits
    mr = { default = 4, domain = { 1, 2, 3, 4, 6, 8 } },
    nr = { default = 32, domain = { 16, 32, 48, 64 } },
    nc = { default = 256, domain = { 64, 128, 192, 256, 384, 512, 1024 } },
    mc = { default = 64, domain = { 16, 24, 32, 48, 64, 96, 128, 256, 512 } },
  },
}

local function up(x, m) return (x + m - 1) // m * m end

function T.constraints(p, t, target)
  local nv = t.nr // target.vl
  local regs = (t.passes + 1) * t.mr * nv + nv + 1
  if regs > target.regs then
    return string.format("register tile needs %d vector registers, %s has %d", regs, target.name, target.regs)
  end
  if t.nc % t.nr ~= 0 then return "nc must be a multiple of nr" end
  if t.mr > p.M and t.mr > 1 then return "mr larger than M" end
  if t.mc % t.mr ~= 0 then return "mc must be a multiple of mr" end
end

function T.build(p, t)
  local M, N, K, P = p.M, p.N, p.K, t.passes
  local Np, Kp = up(N, 16), up(K, 8)
  local nblk = (K + 31) // 32
  local kb = math.min(32, Kp) -- k per step: one MX block (all of K when K < 32)
  local MC = math.min(t.mc, up(M, t.mr))
  local x = kf.arg{ name = "x", dtype = "bf16", dims = { M, K } }
  local w = kf.arg{ name = "w", dtype = "u8", dims = { N, K }, layout = "qweight", bits = 4, group = 32, pack = "n16k4",
                    format = "mxfp4" }
  local ws = kf.arg{ name = "w_scale", dtype = "f32", dims = { nblk, Np } }
  local y = kf.arg{ name = "y", dtype = "f32", dims = { M, N }, out = true }
  local xq = kf.scratch{ name = "xq", dtype = "i8", dims = { P, MC, Kp } }
  local xs = kf.scratch{ name = "xs", dtype = "f32", dims = { P, MC, nblk } }
  local xsum = kf.scratch{ name = "xsum", dtype = "i32", dims = { P, MC, (Kp + 31) // 32 } }
  local acci = kf.reg{ name = "acci", dtype = "i32", dims = { P * t.mr, t.nr } }
  local accf = kf.reg{ name = "accf", dtype = "f32", dims = { t.mr, t.nr } }
  kf.loop("n0", 0, Np, t.nc, function(n0)
    kf.loop("m0", 0, M, MC, function(m0)
      kf.quantize{ src = x:tile({ m0, 0 }, { MC, K }), codes = xq, scales = xs, sums = xsum,
                   passes = P, act_group = 32, sum_group = 32, format = "mxfp4" }
      kf.loop("n1", n0, kf.min(n0 + t.nc, Np), t.nr, function(n1)
        kf.loop("m1", m0, kf.min(m0 + MC, M), t.mr, function(m1)
          kf.zero{ dst = accf }
          kf.loop("g", 0, nblk, 1, function(g)   -- one MX block of 32 per step
            kf.zero{ dst = acci }
            kf.mma{ acc = acci, a = xq:tile({ 0, m1 - m0, g * 32 }, { P, t.mr, kb }),
                    b = w:tile({ n1, g * 32 }, { t.nr, kb }) }
            kf.scale_acc{ acc = accf, src = acci, passes = P, offset = 128,
                          act_scales = xs:tile({ 0, m1 - m0, g }, { P, t.mr, 1 }),
                          act_sums = xsum:tile({ 0, m1 - m0, g }, { P, t.mr, 1 }),
                          w_scales = ws:tile({ g, n1 }, { 1, t.nr }) }
          end)
          kf.store{ dst = y:tile({ m1, n1 }, { t.mr, t.nr }), src = accf }
        end)
      end)
    end)
  end, { parallel = true })
end

return T
