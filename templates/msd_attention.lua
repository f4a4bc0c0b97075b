-- msd_attention: decode attention over an INT8 KV cache by Multi-Scale Dequant (DESIGN.md
-- section 4, refs/msd.md section 5): nothing in the cache is dequantized. K's scale is folded
-- into Q (per channel; per-token K scales multiply the scores instead), the scaled Q is split
-- into int8 passes and Q K^T runs as an int8 GEMM on the cache codes (vpdpbusd); after the
-- online softmax, V's per-token scale is folded into P, P is split into int8 passes and P V
-- runs as an int8 GEMM on V's codes. The passes are stacked as extra rows of each GEMM's
-- register tile, so the cache is read once per block. The cache is stored the way the int8
-- GEMM reads it: K per kv head as packed n16k4 (n = token, k = channel), V as packed n16k4
-- (n = channel, k = token), codes offset-binary, scales separate.
local T = {
  name = "msd_attention",
  doc = "MSD decode attention over an INT8 KV cache: Q and P split into int8 passes, int8 GEMMs on the cache codes",
  reference = "attn_q",
  params = {
    B = { default = 1 }, H = { min = 1 }, HKV = { default = 0, min = 0 }, -- 0: HKV = H
    S = { min = 1 }, D = { default = 128 }, DV = { default = 0, min = 0 },  -- 0: DV = D
    kscale = { default = 0, domain = { 0, 1 } }, -- K scales: 0 per channel (folded into Q), 1 per token
    -- cache format: 0 = INT8 (as above); 1 = MXFP4: K in blocks of 32 channels per token, V in
    -- blocks of 32 tokens per channel (E8M0 scales, doubled E2M1 codes held in int8); Q and P
    -- are then split into MXFP4 passes and every 32-block is one exact int8 dot product.
    kvfmt = { default = 0, domain = { 0, 1 } },
  },
  lib = {
    params = { "B", "H", "HKV", "S", "D", "DV", "kscale", "kvfmt" },
    no_fallback = "the quantized KV cache layout (n16k4 blocks padded to the tuned block size bs) depends on the "
      .. "configuration: shapes outside the tuned list return -2",
  },
  tunables = {
    passes = { default = 2, domain = { 1, 2, 3 }, accuracy = true }, -- ~7.5 bits per pass: kept unless --min-bits
    hb = { default = 16, domain = { 1, 2, 4, 8, 16, 32, 64 } },
    bs = { default = 128, domain = { 32, 64, 128, 256 } },
    mr = { default = 2, domain = { 1, 2, 4 } },
    nr = { default = 32, domain = { 16, 32, 64 } },
  },
}

local function up(x, m) return (x + m - 1) // m * m end
local function dims(p) return (p.HKV > 0 and p.HKV or p.H), (p.DV > 0 and p.DV or p.D) end

function T.constraints(p, t, target)
  local HKV, DV = dims(p)
  if p.H % HKV ~= 0 then return "H must be a multiple of HKV" end
  local G = p.H // HKV
  if G % t.hb ~= 0 then return string.format("hb=%d must divide the %d query heads per kv head", t.hb, G) end
  if t.hb % t.mr ~= 0 then return "mr must divide hb" end
  if t.bs % t.nr ~= 0 or 64 % t.nr ~= 0 then return "nr must divide bs and 64" end
  if DV % t.nr ~= 0 then return string.format("nr=%d must divide DV=%d", t.nr, DV) end
  local nv = t.nr // target.vl
  if (t.passes + 1) * t.mr * nv + nv + 1 > target.regs then return "register tile too large" end
  if t.bs > 2 * up(p.S, 16) and t.bs > 32 then return "bs much larger than S" end
end

-- Per-task state of the online softmax (scores s, output o, running max m and sum l, the
-- rescale alpha) and the two register tiles of the int8 GEMMs; task_init resets it.
local function task_state(hb, bs, DV, P, t)
  return {
    s = kf.scratch{ name = "s", dtype = "f32", dims = { hb, bs } },
    o = kf.scratch{ name = "o", dtype = "f32", dims = { hb, DV } },
    m = kf.scratch{ name = "m", dtype = "f32", dims = { hb } },
    l = kf.scratch{ name = "l", dtype = "f32", dims = { hb } },
    alpha = kf.scratch{ name = "alpha", dtype = "f32", dims = { hb } },
    acci = kf.reg{ name = "acci", dtype = "i32", dims = { P * t.mr, t.nr } },
    accf = kf.reg{ name = "accf", dtype = "f32", dims = { t.mr, t.nr } },
  }
end

local function task_init(st)
  kf.fill{ dst = st.m, value = -math.huge }
  kf.fill{ dst = st.l, value = 0 }
  kf.fill{ dst = st.o, value = 0 }
end

-- MXFP4 cache: per 32-block spans with their own scales on both sides (Q/P passes x cache).
local function build_mx(p, t)
  local B, H, S, D = p.B, p.H, p.S, p.D
  local HKV, DV = dims(p)
  local G, hb, bs, P = H // HKV, t.hb, t.bs, t.passes
  local Dp, Sk = up(D, 8), up(S, 64)
  local nbd, nblk = (D + 31) // 32, (S + bs - 1) // bs
  local kd = math.min(32, Dp) -- channels per Q K^T step: one MX block (all of D when D < 32)
  local ntb = nblk * (bs // 32) -- token blocks of V's scales, padded to whole KV blocks
  local q = kf.arg{ name = "q", dtype = "bf16", dims = { B * H, D } }
  local k = kf.arg{ name = "k", dtype = "u8", dims = { B * HKV, Sk, D }, layout = "qweight", bits = 8, group = 32, pack = "n16k4" }
  local k_scale = kf.arg{ name = "k_scale", dtype = "f32", dims = { B * HKV, nbd, Sk } }
  -- V is packed for whole KV blocks (zero codes past S), so every 32-token span is inside it
  local v = kf.arg{ name = "v", dtype = "u8", dims = { B * HKV, DV, nblk * bs }, layout = "qweight", bits = 8, group = 32, pack = "n16k4" }
  local v_scale = kf.arg{ name = "v_scale", dtype = "f32", dims = { B * HKV, ntb, up(DV, 16) } }
  local out = kf.arg{ name = "out", dtype = "f32", dims = { B * H, DV }, out = true }
  local st = task_state(hb, bs, DV, P, t)
  local s, o, m, l, alpha, acci, accf = st.s, st.o, st.m, st.l, st.alpha, st.acci, st.accf
  local ones = kf.scratch{ name = "ones", dtype = "f32", dims = { 1, up(D, 16) } }
  local qf = kf.scratch{ name = "qf", dtype = "f32", dims = { hb, D } }
  local qc = kf.scratch{ name = "qc", dtype = "i8", dims = { P, hb, Dp } }
  local qs = kf.scratch{ name = "qs", dtype = "f32", dims = { P, hb, nbd } }
  local qsum = kf.scratch{ name = "qsum", dtype = "i32", dims = { P, hb, (Dp + 31) // 32 } }
  local pc = kf.scratch{ name = "pc", dtype = "i8", dims = { P, hb, bs } }
  local ps = kf.scratch{ name = "ps", dtype = "f32", dims = { P, hb, bs // 32 } }
  local psum = kf.scratch{ name = "psum", dtype = "i32", dims = { P, hb, bs // 32 } }
  kf.loop("bg", 0, B * HKV, 1, function(bg)
    kf.loop("hi", 0, G // hb, 1, function(hi)
      local head0 = bg * G + hi * hb
      kf.fill{ dst = ones, value = 1 }
      task_init(st)
      kf.scale_cols{ dst = qf, src = q:tile({ head0, 0 }, { hb, D }), scales = ones:tile({ 0, 0 }, { 1, D }), factor = 1 / math.sqrt(D) }
      kf.quantize{ src = qf, codes = qc, scales = qs, sums = qsum, passes = P, act_group = 32, sum_group = 32, format = "mxfp4" }
      kf.loop("jb", 0, nblk, 1, function(jb)
        local j0 = jb * bs
        local len = kf.min(S - j0, bs)
        kf.loop("m1", 0, hb, t.mr, function(m1)
          kf.loop("n1", j0, kf.min(j0 + bs, Sk), t.nr, function(n1)
            kf.zero{ dst = accf }
            kf.loop("gd", 0, nbd, 1, function(gd)
              kf.zero{ dst = acci }
              kf.mma{ acc = acci, a = qc:tile({ 0, m1, gd * 32 }, { P, t.mr, kd }), b = k:tile({ bg, n1, gd * 32 }, { 1, t.nr, kd }) }
              kf.scale_acc{ acc = accf, src = acci, passes = P, offset = 128,
                            act_scales = qs:tile({ 0, m1, gd }, { P, t.mr, 1 }), act_sums = qsum:tile({ 0, m1, gd }, { P, t.mr, 1 }),
                            w_scales = k_scale:tile({ bg, gd, n1 }, { 1, 1, t.nr }) }
            end)
            kf.store{ dst = s:tile({ m1, n1 - j0 }, { t.mr, t.nr }), src = accf }
          end)
        end)
        kf.softmax{ s = s, m = m, l = l, alpha = alpha, len = len }
        kf.rescale{ o = o, alpha = alpha }
        kf.quantize{ src = s, codes = pc, scales = ps, sums = psum, passes = P, act_group = 32, sum_group = 32, format = "mxfp4" }
        kf.loop("m2", 0, hb, t.mr, function(m2)
          kf.loop("c1", 0, DV, t.nr, function(c1)
            kf.zero{ dst = accf }
            kf.loop("tb", 0, bs // 32, 1, function(tb)
              kf.zero{ dst = acci }
              kf.mma{ acc = acci, a = pc:tile({ 0, m2, tb * 32 }, { P, t.mr, 32 }), b = v:tile({ bg, c1, j0 + tb * 32 }, { 1, t.nr, 32 }) }
              kf.scale_acc{ acc = accf, src = acci, passes = P, offset = 128,
                            act_scales = ps:tile({ 0, m2, tb }, { P, t.mr, 1 }), act_sums = psum:tile({ 0, m2, tb }, { P, t.mr, 1 }),
                            w_scales = v_scale:tile({ bg, jb * (bs // 32) + tb, c1 }, { 1, 1, t.nr }) }
            end)
            kf.accum_store{ dst = o:tile({ m2, c1 }, { t.mr, t.nr }), src = accf }
          end)
        end)
      end)
      kf.finalize{ out = out:tile({ head0, 0 }, { hb, DV }), o = o, l = l }
    end, { parallel = true })
  end, { parallel = true })
end

function T.build(p, t)
  if p.kvfmt == 1 then return build_mx(p, t) end
  local B, H, S, D = p.B, p.H, p.S, p.D
  local HKV, DV = dims(p)
  local G, hb, bs, P = H // HKV, t.hb, t.bs, t.passes
  local Sp, Dp = up(S, 16), up(D, 8)
  local Sk = up(S, 64) -- K is packed for this many tokens (zero codes past S), so every key tile is whole
  local q = kf.arg{ name = "q", dtype = "bf16", dims = { B * H, D } }
  local k = kf.arg{ name = "k", dtype = "u8", dims = { B * HKV, Sk, D }, layout = "qweight", bits = 8, pack = "n16k4" }
  local k_scale = kf.arg{ name = "k_scale", dtype = "f32", dims = { B * HKV, p.kscale == 1 and Sk or D } }
  local v = kf.arg{ name = "v", dtype = "u8", dims = { B * HKV, DV, S }, layout = "qweight", bits = 8, pack = "n16k4" }
  local v_scale = kf.arg{ name = "v_scale", dtype = "f32", dims = { B * HKV, Sp } }
  local out = kf.arg{ name = "out", dtype = "f32", dims = { B * H, DV }, out = true }
  local st = task_state(hb, bs, DV, P, t)
  local s, o, m, l, alpha, acci, accf = st.s, st.o, st.m, st.l, st.alpha, st.acci, st.accf
  local ones = kf.scratch{ name = "ones", dtype = "f32", dims = { 1, math.max(up(D, 16), up(DV, 16), bs) } }
  local qf = kf.scratch{ name = "qf", dtype = "f32", dims = { hb, D } }
  local qc = kf.scratch{ name = "qc", dtype = "i8", dims = { P, hb, Dp } }
  local qs = kf.scratch{ name = "qs", dtype = "f32", dims = { P, hb, 1 } }
  local qsum = kf.scratch{ name = "qsum", dtype = "i32", dims = { P, hb, 1 } }
  local pf = kf.scratch{ name = "pf", dtype = "f32", dims = { hb, bs } }
  local pc = kf.scratch{ name = "pc", dtype = "i8", dims = { P, hb, bs } }
  local ps = kf.scratch{ name = "ps", dtype = "f32", dims = { P, hb, 1 } }
  local psum = kf.scratch{ name = "psum", dtype = "i32", dims = { P, hb, 1 } }
  kf.loop("bg", 0, B * HKV, 1, function(bg)
    kf.loop("hi", 0, G // hb, 1, function(hi)
      local head0 = bg * G + hi * hb
      kf.fill{ dst = ones, value = 1 }
      task_init(st)
      -- Q' = Q * s_K (per channel) * 1/sqrt(D), split into int8 passes once per task
      local ksc = p.kscale == 0 and k_scale:tile({ bg, 0 }, { 1, D }) or ones:tile({ 0, 0 }, { 1, D })
      kf.scale_cols{ dst = qf, src = q:tile({ head0, 0 }, { hb, D }), scales = ksc, factor = 1 / math.sqrt(D) }
      kf.quantize{ src = qf, codes = qc, scales = qs, sums = qsum, passes = P }
      kf.loop("j0", 0, S, bs, function(j0)
        local len = kf.min(S - j0, bs)
        -- scores: int8 GEMM of the Q passes with K's codes
        kf.loop("m1", 0, hb, t.mr, function(m1)
          kf.loop("n1", j0, kf.min(j0 + bs, Sk), t.nr, function(n1) -- absolute key index
            kf.zero{ dst = acci }
            kf.mma{ acc = acci, a = qc:tile({ 0, m1, 0 }, { P, t.mr, Dp }), b = k:tile({ bg, n1, 0 }, { 1, t.nr, Dp }) }
            kf.zero{ dst = accf }
            local wsc = p.kscale == 1 and k_scale:tile({ bg, n1 }, { 1, t.nr }) or ones:tile({ 0, 0 }, { 1, t.nr })
            kf.scale_acc{ acc = accf, src = acci, passes = P, offset = 128,
                          act_scales = qs:tile({ 0, m1, 0 }, { P, t.mr, 1 }), act_sums = qsum:tile({ 0, m1, 0 }, { P, t.mr, 1 }),
                          w_scales = wsc }
            kf.store{ dst = s:tile({ m1, n1 - j0 }, { t.mr, t.nr }), src = accf }
          end)
        end)
        kf.softmax{ s = s, m = m, l = l, alpha = alpha, len = len }
        kf.rescale{ o = o, alpha = alpha }
        -- P' = P * s_V (per token), split into int8 passes; O += P' V as an int8 GEMM on V's codes
        kf.scale_cols{ dst = pf, src = s, scales = v_scale:tile({ bg, j0 }, { 1, bs }) }
        kf.quantize{ src = pf, codes = pc, scales = ps, sums = psum, passes = P }
        kf.loop("m2", 0, hb, t.mr, function(m2)
          kf.loop("c1", 0, DV, t.nr, function(c1)
            kf.zero{ dst = acci }
            kf.mma{ acc = acci, a = pc:tile({ 0, m2, 0 }, { P, t.mr, bs }), b = v:tile({ bg, c1, j0 }, { 1, t.nr, bs }) }
            kf.zero{ dst = accf }
            kf.scale_acc{ acc = accf, src = acci, passes = P, offset = 128,
                          act_scales = ps:tile({ 0, m2, 0 }, { P, t.mr, 1 }), act_sums = psum:tile({ 0, m2, 0 }, { P, t.mr, 1 }),
                          w_scales = ones:tile({ 0, 0 }, { 1, t.nr }) }
            kf.accum_store{ dst = o:tile({ m2, c1 }, { t.mr, t.nr }), src = accf }
          end)
        end)
      end)
      kf.finalize{ out = out:tile({ head0, 0 }, { hb, DV }), o = o, l = l }
    end, { parallel = true })
  end, { parallel = true })
end

return T
