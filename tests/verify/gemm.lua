-- Verifier contracts of quantize, mma (int8 and dequant) and scale_acc (tests/test_verify.c):
-- case N adds one bad use on the line marked "-- expect N: TEXT".
return {
  name = "verify_gemm",
  params = { case = { default = 0, min = 0 } },
  build = function(p)
    local c = p.case
    local x = kf.arg{ name = "x", dtype = "bf16", dims = { 4, 32 } }
    local w = kf.arg{ name = "w", dtype = "u8", dims = { 16, 32 }, layout = "qweight", bits = 8, pack = "n16k4" }
    local wd = kf.arg{ name = "wd", dtype = "u8", dims = { 16, 32 }, layout = "qweight", bits = 8, pack = "n16k1" }
    local ws = kf.arg{ name = "ws", dtype = "f32", dims = { 1, 16 } }
    local y = kf.arg{ name = "y", dtype = "f32", dims = { 4, 16 }, out = true }
    local xq = kf.scratch{ name = "xq", dtype = "i8", dims = { 2, 4, 32 } }
    local xs = kf.scratch{ name = "xs", dtype = "f32", dims = { 2, 4, 1 } }
    local xsum = kf.scratch{ name = "xsum", dtype = "i32", dims = { 2, 4, 1 } }
    local acci = kf.reg{ name = "acci", dtype = "i32", dims = { 8, 16 } }
    local accf = kf.reg{ name = "accf", dtype = "f32", dims = { 4, 16 } }
    local acc2 = kf.reg{ name = "acc2", dtype = "f32", dims = { 4, 16 } }
    kf.quantize{ src = x, codes = xq, scales = xs, sums = xsum, passes = 2 }
    kf.zero{ dst = acci }
    kf.zero{ dst = accf }
    kf.mma{ acc = acci, a = xq, b = w }
    kf.scale_acc{ acc = accf, src = acci, passes = 2, offset = 128, act_scales = xs, act_sums = xsum, w_scales = ws }
    kf.store{ dst = y, src = accf }
    kf.zero{ dst = acc2 }
    kf.mma{ acc = acc2, a = x, b = wd, b_scales = ws, round_bf16 = true }
    kf.accum_store{ dst = y, src = acc2 }
    -- quantize
    if c == 1 then kf.quantize{ src = x, codes = xq, scales = xs, sums = xsum, passes = 5 } end -- expect 1: quantize: passes must be in 1..4, got 5
    if c == 2 then kf.quantize{ src = x, codes = xq, scales = xs, sums = xsum, passes = 1 } end -- expect 2: quantize: codes ('xq') must be i8 {passes, rows, Kp} with passes = 1, it has 2 in dim 0
    local xi = kf.arg{ name = "xi", dtype = "i32", dims = { 4, 32 } }
    if c == 3 then kf.quantize{ src = xi, codes = xq, scales = xs, sums = xsum, passes = 2 } end -- expect 3: quantize: operand 'src' ('xi') must be f32 or bf16, it is i32
    local xq30 = kf.scratch{ name = "xq30", dtype = "i8", dims = { 2, 4, 30 } }
    if c == 4 then kf.quantize{ src = x, codes = xq30, scales = xs, sums = xsum, passes = 2 } end -- expect 4: quantize: codes row length 30 must be K = 32 rounded up to a multiple of 8
    local xq2 = kf.scratch{ name = "xq2", dtype = "i8", dims = { 2, 2, 32 } }
    if c == 5 then kf.quantize{ src = x, codes = xq2, scales = xs, sums = xsum, passes = 2 } end -- expect 5: quantize: codes ('xq2') has 2 rows, fewer than the src tile's 4
    if c == 6 then kf.quantize{ src = x, codes = xq, scales = xs, sums = xsum, passes = 2, act_group = 8 } end -- expect 6: quantize: scales need 4 groups (K = 32, act_group = 8), 'xs' has 1
    if c == 7 then kf.quantize{ src = x, codes = xq, scales = xs, sums = xsum, passes = 2, sum_group = 8 } end -- expect 7: quantize: sums need 4 groups (Kp = 32, sum_group = 8), 'xsum' has 1
    local x64 = kf.arg{ name = "x64", dtype = "bf16", dims = { 4, 64 } }
    local xq64 = kf.scratch{ name = "xq64", dtype = "i8", dims = { 2, 4, 64 } }
    if c == 8 then kf.quantize{ src = x64, codes = xq64, scales = xs, sums = xsum, passes = 2, format = "mxfp4" } end -- expect 8: quantize: format "mxfp4" needs act_group = 32 (MX blocks), got 64
    if c == 9 then kf.quantize{ src = x, codes = xq, scales = xs, sums = xsum, passes = 2, format = "fp8" } end -- expect 9: quantize: format must be one of "int8|mxfp4" (separated by |), got fp8
    local xin = kf.arg{ name = "xin", dtype = "i8", dims = { 2, 4, 32 } }
    if c == 10 then kf.quantize{ src = x, codes = xin, scales = xs, sums = xsum, passes = 2 } end -- expect 10: quantize: operand 'codes' is written, but 'xin' is an input argument
    if c == 11 then kf.quantize{ src = x, codes = xq:tile({ 1, 0, 0 }, { 1, 4, 32 }), scales = xs, sums = xsum, passes = 2 } end -- expect 11: quantize: 'codes' ('xq') needs 2 elements in dim 0 from offset 1 (passes x rows x Kp), the buffer has 2
    if c == 12 then kf.quantize{ src = x, codes = xq, scales = xs:tile({ 0, 2, 0 }, { 2, 1, 1 }), sums = xsum, passes = 2 } end -- expect 12: quantize: 'scales' ('xs') needs 4 elements in dim 1 from offset 2 (passes x rows x groups), the buffer has 4
    -- mma, int8
    if c == 13 then kf.mma{ acc = y, a = xq, b = w } end -- expect 13: mma: operand 'acc' ('y') must be a register tile (kf.reg)
    if c == 14 then kf.mma{ acc = acci, a = xq, b = ws } end -- expect 14: mma: operand 'b' ('ws') must be quantized weights (layout = "qweight")
    if c == 15 then kf.mma{ acc = acci, a = ws, b = w } end -- expect 15: mma: operand 'a' ('ws') must be i8 or bf16, it is f32
    if c == 16 then kf.mma{ acc = accf, a = xq, b = w } end -- expect 16: mma: int8 'a' accumulates into an i32 acc, 'accf' is f32
    if c == 17 then kf.mma{ acc = acci, a = xq, b = wd } end -- expect 17: mma: int8 'a' needs 'b' ('wd') packed n16k4
    if c == 18 then kf.mma{ acc = acci, a = xq:tile({ 0, 0, 0 }, { 2, 2, 32 }), b = w } end -- expect 18: mma: 'acc' ('acci') must be {passes*rows of a, columns of b} = {4, 16}, it is {8, 16}
    if c == 19 then kf.mma{ acc = acci, a = xq, b = w:tile({ 0, 0 }, { 16, 16 }) } end -- expect 19: mma: k extents of 'a' (32) and 'b' (16) differ
    if c == 20 then kf.mma{ acc = acci, a = xq:tile({ 0, 0, 0 }, { 2, 4, 12 }), b = w:tile({ 0, 0 }, { 16, 12 }) } end -- expect 20: mma: k extent 12 must be a multiple of 8
    local acc8 = c == 21 and kf.reg{ name = "acc8", dtype = "i32", dims = { 8, 8 } }
    if c == 21 then kf.mma{ acc = acc8, a = xq, b = w:tile({ 0, 0 }, { 8, 32 }) } end -- expect 21: mma: the tile of 'b' has 8 columns, not a multiple of 16 (n16 weight packing)
    if c == 22 then kf.mma{ acc = acci, a = xq:tile({ 0, 0, 0 }, { 2, 4, 40 }), b = w:tile({ 0, 0 }, { 16, 40 }) } end -- expect 22: mma: codes rows of 'xq' (32) are shorter than the k extent 40
    local w3 = kf.arg{ name = "w3", dtype = "u8", dims = { 2, 16, 32 }, layout = "qweight", bits = 8, pack = "n16k4" }
    if c == 23 then kf.mma{ acc = acci, a = xq, b = w3 } end -- expect 23: mma: a batch of packed matrices ('w3') is used one at a time (extent 1 in dim 0)
    -- mma, dequant
    if c == 24 then kf.mma{ acc = acc2, a = x, b = wd } end -- expect 24: mma: a dequant mma (bf16 'a') needs b_scales
    if c == 25 then kf.mma{ acc = acc2, a = x, b = w, b_scales = ws } end -- expect 25: mma: bf16 'a' needs 'b' ('w') packed n16k1
    local x3 = kf.arg{ name = "x3", dtype = "bf16", dims = { 1, 4, 32 } }
    if c == 26 then kf.mma{ acc = acc2, a = x3, b = wd, b_scales = ws } end -- expect 26: mma: bf16 'a' ('x3') must be a matrix {rows, k}
    if c == 27 then kf.mma{ acc = acci, a = x, b = wd, b_scales = ws } end -- expect 27: mma: bf16 'a' accumulates into an f32 acc, 'acci' is i32
    if c == 28 then kf.mma{ acc = acc2, a = x:tile({ 0, 0 }, { 2, 32 }), b = wd, b_scales = ws } end -- expect 28: mma: 'acc' ('acc2') must be {rows of a, columns of b} = {2, 16}, it is {4, 16}
    local wd3 = kf.arg{ name = "wd3", dtype = "u8", dims = { 2, 16, 32 }, layout = "qweight", bits = 8, pack = "n16k1" }
    if c == 29 then kf.mma{ acc = acc2, a = x, b = wd3:tile({ 0, 0, 0 }, { 1, 16, 32 }), b_scales = ws } end -- expect 29: mma: bf16 'a' needs one packed matrix 'b' {N, K}, 'wd3' has rank 3
    if c == 30 then kf.mma{ acc = acc2, a = x, b = wd, b_scales = xsum } end -- expect 30: mma: operand 'b_scales' ('xsum') must be f32, it is i32
    if c == 31 then kf.mma{ acc = acc2, a = x, b = wd, b_scales = ws, round_bf16 = 2 } end -- expect 31: mma: round_bf16 must be 0 or 1 (false or true), got 2
    -- scale_acc
    if c == 32 then kf.scale_acc{ acc = accf, src = acci, passes = 1, offset = 128, act_scales = xs, act_sums = xsum, w_scales = ws } end -- expect 32: scale_acc: 'src' ('acci') must be {passes*rows, columns} of acc = {4, 16}, it is {8, 16}
    if c == 33 then kf.scale_acc{ acc = accf, src = accf, passes = 1, act_scales = xs, act_sums = xsum, w_scales = ws } end -- expect 33: scale_acc: operand 'src' ('accf') must be i32, it is f32
    if c == 34 then kf.scale_acc{ acc = accf, src = acci, passes = 2, act_scales = ws, act_sums = xsum, w_scales = ws } end -- expect 34: scale_acc: operand 'act_scales' ('ws') must have rank 3, it has 2
    if c == 35 then kf.scale_acc{ acc = accf, src = acci, passes = 2, offset = 200, act_scales = xs, act_sums = xsum, w_scales = ws } end -- expect 35: scale_acc: offset must be in 0..128, got 200
    if c == 36 then kf.scale_acc{ acc = accf, src = acci, passes = 2, act_scales = xs, act_sums = xsum, w_scales = accf } end -- expect 36: scale_acc: operand 'w_scales' ('accf') must be a memory buffer (kf.arg or kf.scratch)
    if c == 37 then kf.scale_acc{ acc = accf, src = acci, passes = 2, act_scales = xs, act_sums = xsum } end -- expect 37: scale_acc: missing operand 'w_scales' (a tile or buffer)
    if c == 38 then kf.mma{ acc = acc2, a = x, b = wd, b_scales = ws, round_bf16 = "yes" } end -- expect 38: mma: field 'round_bf16' must be an integer or boolean, got string
  end,
}
