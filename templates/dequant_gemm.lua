-- dequant_gemm: the baseline MSD replaces. y = W x with W8/W4 weights (per channel or
-- per K-group scales) and BF16 activations: each weight vector is converted to f32
-- ((u - offset) * scale) in registers, then a float FMA GEMM (register-blocked).
local T = {
  name = "dequant_gemm",
  doc = "Dequant-then-GEMM baseline: y[M,N] = x[M,K] (bf16) * dequant(W[N,K])^T in f32",
  reference = "gemm_q",
  key = { "M", "N", "K" },
  params = {
    M = { min = 1 }, N = { min = 1 }, K = { min = 1 },
    bits = { default = 8, domain = { 4, 8 } },
    group = { default = 0, domain = { 0, 32, 64, 128 } },
    -- 1: each dequantized weight is rounded to bf16 before the GEMM, as W8A16/W4A16 kernels
    -- that feed a BF16 matrix unit do (the baseline of the MSD paper); 0: kept in f32.
    wround = { default = 1, domain = { 0, 1 } },
    -- weight format: 0 = int8/int4 codes (bits, group); 1 = MXFP4 (doubled E2M1 codes in
    -- int8 with the block scales 2^e/2; needs bits = 8, group = 32)
    wfmt = { default = 0, domain = { 0, 1 } },
  },
  lib = {
    params = { "M", "N", "K", "bits", "group", "wfmt", "wround" },
    fallback = "dequant_gemm", -- int codes only: wfmt = 1 (MXFP4) outside the list returns -2
    fallback_args = { "M", "N", "K", "bits", "group", "wround", "x", "w", "w_scale", "y" },
  },
  tunables = {
    mr = { default = 4, domain = { 1, 2, 3, 4, 6, 8 } },
    nr = { default = 32, domain = { 16, 32, 48, 64 } },
    nc = { default = 256, domain = { 64, 128, 256, 512, 1024 } },
    kc = { default = 512, domain = { 128, 256, 512, 1024, 2048 } },
  },
}

local lib = require("kf") -- templates/lib/kf.lua
local up = lib.up

function T.constraints(p, t, target)
  local nv = t.nr // target.vl
  local regs = t.mr * nv + nv * (p.bits == 4 and 3 or 2) + 1
  local too_many = lib.fits_registers(regs, target)
  if too_many then return too_many end
  if t.nc % t.nr ~= 0 then return "nc must be a multiple of nr" end
  if p.group > 0 and t.kc % p.group ~= 0 and p.group % t.kc ~= 0 then
    return "kc and the weight group must divide one another"
  end
  if t.mr > p.M and t.mr > 1 then return "mr larger than M" end
  if p.wfmt == 1 and (p.bits ~= 8 or p.group ~= 32) then return "MXFP4 weights (wfmt=1) need bits=8 and group=32" end
end

function T.build(p, t)
  local M, N, K = p.M, p.N, p.K
  local Np = up(N, 16)
  local ks = p.group > 0 and math.min(t.kc, p.group) or t.kc
  local nspan = (K + ks - 1) // ks
  local wng = p.group > 0 and (K + p.group - 1) // p.group or 1
  local x = kf.arg{ name = "x", dtype = "bf16", dims = { M, K } }
  local w = kf.arg{ name = "w", dtype = "u8", dims = { N, K }, layout = "qweight", bits = p.bits,
                    group = p.group, pack = "n16k1", format = p.wfmt == 1 and "mxfp4" or "int" }
  local ws = kf.arg{ name = "w_scale", dtype = "f32", dims = { wng, Np } }
  local y = kf.arg{ name = "y", dtype = "f32", dims = { M, N }, out = true }
  local acc = kf.reg{ name = "acc", dtype = "f32", dims = { t.mr, t.nr } }
  kf.loop("n0", 0, Np, t.nc, function(n0)
    kf.loop("m1", 0, M, t.mr, function(m1)
      kf.loop("n1", n0, kf.min(n0 + t.nc, Np), t.nr, function(n1)
        kf.zero{ dst = acc }
        kf.loop("g", 0, nspan, 1, function(g)
          local wg = p.group > 0 and g or 0 -- ks == group when grouped (kc >= 128 >= group)
          kf.mma{ acc = acc, a = x:tile({ m1, g * ks }, { t.mr, ks }),
                  b = w:tile({ n1, g * ks }, { t.nr, ks }),
                  b_scales = ws:tile({ wg, n1 }, { 1, t.nr }), round_bf16 = p.wround }
        end)
        kf.store{ dst = y:tile({ m1, n1 }, { t.mr, t.nr }), src = acc }
      end)
    end)
  end, { parallel = true })
end

return T
