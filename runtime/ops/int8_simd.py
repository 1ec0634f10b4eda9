"""int8 x int8 dot products on AVX2 without VNNI: ``vpmaddubsw`` with the sign trick.

AVX2 multiplies bytes only as unsigned x signed (``vpmaddubsw``: u8 * s8, adjacent pairs
summed into saturating int16). For w, x both int8 in [-127, 127] (what ``quantize_rows``
and ``quantize`` give) w * x = |w| * (x * sign(w)): ``vpabsb`` and ``vpsignb`` make the
operands, a pair sums to at most 2 * 127 * 127 = 32258 < 2^15, so nothing saturates and
the sum is exact; ``vpmaddwd`` by ones widens the pairs to int32. 32 products per 4
instructions, where LLVM's code for the plain loop (``fused_layer.idot``'s twin) sign-
extends to int16 and uses 128-bit ``vpmaddwd``: 2x the products per cycle or more.
numba has no vector types, so the loop is LLVM IR written here (an ``intrinsic``).

``HAS_AVX2`` says whether numba compiles for a CPU that has it (``NUMBA_CPU_NAME`` and
``NUMBA_CPU_FEATURES`` included); callers use ``dot8`` only then. Not here: the plain
loop and the dispatch between the two (``fused_layer.idot``).
"""

from llvmlite import ir  # numba's code generator, installed with it
from numba import types
from numba.core import cgutils
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic

HAS_AVX2 = "+avx2" in get_host_cpu_features().split(",")
BLOCK = 32  # int8 products per iteration: one 256-bit register

I1, I8, I16, I32, I64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))
V32I8, V16I16, V8I32 = ir.VectorType(I8, 32), ir.VectorType(I16, 16), ir.VectorType(I32, 8)


def _function(module, name, ret, args):
    return cgutils.get_or_insert_function(module, ir.FunctionType(ret, args), name)


@intrinsic
def dot8(typingctx, A, row, q, lo, hi):
    """int32 sum of A[row, k] * q[k] for k in [lo, hi): int8 A (R, K) with unit stride
    along K, int8 q contiguous, every value in [-127, 127]. 32 products a step, then the
    tail one by one."""
    def codegen(context, builder, signature, args):
        a = context.make_array(signature.args[0])(context, builder, args[0])
        x = context.make_array(signature.args[2])(context, builder, args[2])
        row, lo, hi = args[1], args[3], args[4]
        start = builder.add(builder.mul(row, builder.extract_value(a.strides, 0)), lo)
        a_ptr = builder.gep(a.data, [start], source_etype=I8)
        x_ptr = builder.gep(x.data, [lo], source_etype=I8)
        n = builder.sub(hi, lo)
        blocks = builder.sdiv(n, ir.Constant(I64, BLOCK))
        acc = _blocks(builder, a_ptr, x_ptr, blocks)
        total = _function(builder.module, "llvm.vector.reduce.add.v8i32", I32, [V8I32])
        return _tail(builder, a_ptr, x_ptr, builder.mul(blocks, ir.Constant(I64, BLOCK)), n,
                     builder.call(total, [acc]))
    return types.int32(A, row, q, lo, hi), codegen


def _loop(builder, name, start, stop, acc0, step):
    """Emit ``for i in range(start, stop): acc = step(i, acc)``; returns the final acc."""
    entry = builder.block
    test = builder.append_basic_block(f"{name}.test")
    body = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(test)
    builder.position_at_end(test)
    i = builder.phi(I64)
    acc = builder.phi(acc0.type)
    i.add_incoming(start, entry)
    acc.add_incoming(acc0, entry)
    builder.cbranch(builder.icmp_signed("<", i, stop), body, done)
    builder.position_at_end(body)
    new = step(i, acc)
    i.add_incoming(builder.add(i, ir.Constant(I64, 1)), builder.block)
    acc.add_incoming(new, builder.block)
    builder.branch(test)
    builder.position_at_end(done)
    return acc


def _blocks(builder, a_ptr, x_ptr, blocks):
    """<8 x i32> partial sums of the first 32 * blocks products."""
    module = builder.module
    vabs = _function(module, "llvm.abs.v32i8", V32I8, [V32I8, I1])
    vsign = _function(module, "llvm.x86.avx2.psign.b", V32I8, [V32I8, V32I8])
    maddubs = _function(module, "llvm.x86.avx2.pmadd.ub.sw", V16I16, [V32I8, V32I8])
    maddwd = _function(module, "llvm.x86.avx2.pmadd.wd", V8I32, [V16I16, V16I16])
    ones = ir.Constant(V16I16, [1] * 16)

    def step(i, acc):
        offset = builder.mul(i, ir.Constant(I64, BLOCK))
        w = builder.load(builder.gep(a_ptr, [offset], source_etype=I8), typ=V32I8, align=1)
        v = builder.load(builder.gep(x_ptr, [offset], source_etype=I8), typ=V32I8, align=1)
        pairs = builder.call(maddubs, [builder.call(vabs, [w, ir.Constant(I1, 0)]),
                                       builder.call(vsign, [v, w])])  # |w| * (x sign(w))
        return builder.add(acc, builder.call(maddwd, [pairs, ones]))
    return _loop(builder, "dot8.blocks", ir.Constant(I64, 0), blocks, ir.Constant(V8I32, None),
                 step)


def _tail(builder, a_ptr, x_ptr, start, stop, acc0):
    """acc0 + the products in [start, stop), one at a time."""
    def step(i, acc):
        w = builder.load(builder.gep(a_ptr, [i], source_etype=I8), typ=I8)
        v = builder.load(builder.gep(x_ptr, [i], source_etype=I8), typ=I8)
        return builder.add(acc, builder.mul(builder.sext(w, I32), builder.sext(v, I32)))
    return _loop(builder, "dot8.tail", start, stop, acc0, step)
