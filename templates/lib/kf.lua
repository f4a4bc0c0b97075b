-- kf: helpers shared by the templates (require("kf")). Plain Lua in the template sandbox: it
-- sees what a template sees (the `kf` builder, string/math/table) and nothing else.
local M = {}

-- x rounded up to a multiple of m.
function M.up(x, m) return (x + m - 1) // m * m end

-- Vector registers a stacked-pass int8 GEMM register tile needs: passes * mr int32 rows and
-- mr f32 rows of nr / vl vectors, the weight vectors of one k step (twice for 4-bit nibbles),
-- and one broadcast activation.
function M.msd_tile_regs(passes, mr, nr, vl, nibbles)
  local nv = nr // vl
  return (passes + 1) * mr * nv + nv * (nibbles and 2 or 1) + 1
end

-- nil, or the constraint message when a register tile needs more registers than the target has.
function M.fits_registers(need, target)
  if need > target.regs then
    return string.format("register tile needs %d vector registers, %s has %d", need, target.name, target.regs)
  end
end

return M
