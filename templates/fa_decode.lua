-- fa_decode: FlashAttention-2 decode (one query token per sequence) over a BF16 KV cache,
-- MHA / GQA / MQA. Per (sequence, kv head, block of query heads): scores S = scale q K^T
-- block by block, online softmax (running max m and sum l), O = alpha * O + P V, and
-- out = O / l at the end. P is rounded to bf16 before P V (p_bf16 = 1, as GPU/NPU kernels
-- feeding a bf16 matrix unit do). scale = 1/sqrt(D).
local T = {
  name = "fa_decode",
  doc = "FlashAttention-2 decode over a bf16 KV cache (MHA/GQA/MQA): out[B*H,DV] = softmax(q K^T/sqrt(D)) V",
  reference = "attn_decode",
  params = {
    B = { default = 1 }, H = { min = 1 }, HKV = { default = 0, min = 0 }, -- 0: HKV = H (MHA)
    S = { min = 1 }, D = { default = 128 }, DV = { default = 0, min = 0 },  -- 0: DV = D
    p_bf16 = { default = 1, domain = { 0, 1 } },
    -- kvq = 1: the cache is INT8 (K per channel, or per token with kscale = 1; V per token)
    -- dequantized to bf16 before this kernel: the dequant baseline of msd_attention;
    -- kvq = 2: likewise for an MXFP4 cache (msd_attention kvfmt = 1)
    kvq = { default = 0, domain = { 0, 1, 2 } },
    kscale = { default = 0, domain = { 0, 1 } },
  },
  lib = {
    params = { "B", "H", "HKV", "S", "D", "DV", "p_bf16", "kvq", "kscale" },
    fallback = "fa_decode", -- fp64 softmax attention over the bf16 cache (other params at their defaults)
    fallback_args = { "B", "H", "HKV", "S", "D", "DV", "q", "k", "v", "out" },
  },
  tunables = {
    hb = { default = 16, domain = { 1, 2, 4, 8, 16, 32, 64, 128 } }, -- query heads per task
    bs = { default = 256, domain = { 32, 64, 128, 256, 512 } },      -- KV block (tokens)
    mr = { default = 4, domain = { 1, 2, 4, 8 } },                   -- heads per P.V register tile
  },
}

local function dims(p)
  local HKV = p.HKV > 0 and p.HKV or p.H
  local DV = p.DV > 0 and p.DV or p.D
  return HKV, DV
end

function T.constraints(p, t, target)
  local HKV, DV = dims(p)
  if p.H % HKV ~= 0 then return "H must be a multiple of HKV" end
  local G = p.H // HKV
  if G % t.hb ~= 0 then return string.format("hb=%d must divide the %d query heads per kv head", t.hb, G) end
  if DV % target.vl ~= 0 then return string.format("DV=%d must be a multiple of %d", DV, target.vl) end
  if t.bs > 2 * p.S and t.bs > 32 then return "bs much larger than S" end
end

function T.build(p, t)
  local B, H, S, D = p.B, p.H, p.S, p.D
  local HKV, DV = dims(p)
  local G, hb, bs = H // HKV, t.hb, t.bs
  local q = kf.arg{ name = "q", dtype = "bf16", dims = { B * H, D } }
  local k = kf.arg{ name = "k", dtype = "bf16", dims = { B * HKV, S, D } }
  local v = kf.arg{ name = "v", dtype = "bf16", dims = { B * HKV, S, DV } }
  local out = kf.arg{ name = "out", dtype = "f32", dims = { B * H, DV }, out = true }
  local s = kf.scratch{ name = "s", dtype = "f32", dims = { hb, bs } }
  local o = kf.scratch{ name = "o", dtype = "f32", dims = { hb, DV } }
  local m = kf.scratch{ name = "m", dtype = "f32", dims = { hb } }
  local l = kf.scratch{ name = "l", dtype = "f32", dims = { hb } }
  local alpha = kf.scratch{ name = "alpha", dtype = "f32", dims = { hb } }
  kf.loop("bg", 0, B * HKV, 1, function(bg)        -- (sequence, kv head)
    kf.loop("hi", 0, G // hb, 1, function(hi)       -- block of query heads sharing it
      local head0 = bg * G + hi * hb
      kf.fill{ dst = m, value = -math.huge }
      kf.fill{ dst = l, value = 0 }
      kf.fill{ dst = o, value = 0 }
      kf.loop("j0", 0, S, bs, function(j0)
        local len = kf.min(S - j0, bs)
        kf.qk{ s = s, q = q:tile({ head0, 0 }, { hb, D }), k = k:tile({ bg, j0, 0 }, { 1, bs, D }),
               scale = 1 / math.sqrt(D), len = len }
        kf.softmax{ s = s, m = m, l = l, alpha = alpha, len = len, p_bf16 = p.p_bf16 }
        kf.rescale{ o = o, alpha = alpha }
        kf.pv{ o = o, p = s, v = v:tile({ bg, j0, 0 }, { 1, bs, DV }), len = len, mr = t.mr }
      end)
      kf.finalize{ out = out:tile({ head0, 0 }, { hb, DV }), o = o, l = l }
    end, { parallel = true })
  end, { parallel = true })
end

return T
