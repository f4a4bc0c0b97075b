-- amla_decode: MLA decode (DeepSeek: latent d = 576 = 512 + 64 rope, values = the first
-- DV = 512 latent columns, all query heads share one latent KV per sequence) with AMLA's
-- output rescale (refs/amla.md section 1): O is kept in a 2^n frame, n_i = round(-m_i/ln2),
-- P~ = bf16(P * r_hat), and O_i = 2^(n_i - n_{i-1}) O_{i-1} + P~ V where the 2^k factor is an
-- int32 add of k*2^23 (+ the bf16 compensation) on O's bits: exact, no multiply. Guards:
-- k >= -30; |O| > 1e10 -> 0 before the final O / (l * r_hat). rescale = 0 gives the FA-2
-- multiply rescale on the same kernel (the baseline AMLA replaces). scale = 1/sqrt(D).
local T = {
  name = "amla_decode",
  doc = "MLA decode with AMLA (2^k rescale as an int add): out[B*H,DV] = softmax(q kv^T/sqrt(D)) kv[:, :DV]",
  reference = "mla_decode",
  params = {
    B = { default = 1 }, H = { min = 1 }, S = { min = 1 },
    D = { default = 576 }, DV = { default = 512 },
    amla = { default = 1, domain = { 0, 1 } }, -- 0: FA-2 multiply rescale (P rounded to bf16 too)
  },
  lib = {
    params = { "B", "H", "S", "D", "DV", "amla" },
    fallback = "mla_decode", -- fp64 softmax attention, values = the first DV latent columns
    fallback_args = { "B", "H", "S", "D", "DV", "q", "kv", "out" },
  },
  tunables = {
    hb = { default = 32, domain = { 1, 2, 4, 8, 16, 32, 64, 128, 256 } }, -- 256: CANN's task tile (128 heads x MTP 2)
    bs = { default = 512, domain = { 64, 128, 256, 512 } },
    mr = { default = 4, domain = { 1, 2, 4, 8 } },
    -- Ascend model only (the CPU lowering runs blocks in order): overlap block i's QK^T on
    -- the Cube with block i-1's softmax on the Vector cores (AMLA's Preload Pipeline).
    preload = { default = 1, domain = { 0, 1 } },
  },
}

function T.constraints(p, t, target)
  if p.DV > p.D then return "DV must be <= D (values are the first DV latent columns)" end
  if p.H % t.hb ~= 0 then return string.format("hb=%d must divide H=%d", t.hb, p.H) end
  if p.DV % target.vl ~= 0 then return string.format("DV must be a multiple of %d", target.vl) end
  if t.bs > 2 * p.S and t.bs > 64 then return "bs much larger than S" end
end

function T.build(p, t)
  local B, H, S, D, DV = p.B, p.H, p.S, p.D, p.DV
  local hb, bs = t.hb, t.bs
  local q = kf.arg{ name = "q", dtype = "bf16", dims = { B * H, D } }
  local kv = kf.arg{ name = "kv", dtype = "bf16", dims = { B, S, D } }
  local out = kf.arg{ name = "out", dtype = "f32", dims = { B * H, DV }, out = true }
  local s = kf.scratch{ name = "s", dtype = "f32", dims = { hb, bs } }
  local o = kf.scratch{ name = "o", dtype = "f32", dims = { hb, DV } }
  local m = kf.scratch{ name = "m", dtype = "f32", dims = { hb } }
  local l = kf.scratch{ name = "l", dtype = "f32", dims = { hb } }
  local c = kf.scratch{ name = "c", dtype = "f32", dims = { hb } }     -- AMLA: c_prev; FA-2: alpha
  local n = kf.scratch{ name = "n", dtype = "f32", dims = { hb } }
  local add = kf.scratch{ name = "add", dtype = "i32", dims = { hb } }
  kf.loop("b", 0, B, 1, function(b)
    kf.loop("hi", 0, H // hb, 1, function(hi)
      local head0 = b * H + hi * hb
      kf.fill{ dst = m, value = -math.huge }
      kf.fill{ dst = l, value = 0 }
      kf.fill{ dst = o, value = 0 }
      kf.fill{ dst = c, value = 1 }
      kf.fill{ dst = n, value = 0 }
      kf.loop("j0", 0, S, bs, function(j0)
        local len = kf.min(S - j0, bs)
        kf.qk{ s = s, q = q:tile({ head0, 0 }, { hb, D }), k = kv:tile({ b, j0, 0 }, { 1, bs, D }),
               scale = 1 / math.sqrt(D), len = len }
        if p.amla == 1 then
          kf.softmax{ s = s, m = m, l = l, alpha = c, n = n, add = add, len = len, amla = true }
          kf.rescale_exp2{ o = o, add = add }
        else
          kf.softmax{ s = s, m = m, l = l, alpha = c, len = len, p_bf16 = true }
          kf.rescale{ o = o, alpha = c }
        end
        kf.pv{ o = o, p = s, v = kv:tile({ b, j0, 0 }, { 1, bs, DV }), len = len, mr = t.mr }
      end)
      if p.amla == 1 then
        kf.finalize{ out = out:tile({ head0, 0 }, { hb, DV }), o = o, l = l, m = m, n = n, guard = true }
      else
        kf.finalize{ out = out:tile({ head0, 0 }, { hb, DV }), o = o, l = l }
      end
    end, { parallel = true })
  end, { parallel = true })
end

return T
