"""Matrix-vector products on weights in row panels, as LLVM IR: int8 on AVX2 or AVX-512 VNNI,
and float32.

float32 (``panel_dot32``, any CPU: LLVM splits the <8 x float> vectors to what the target
has): a panel is 32 rows, and for each column k their 32 weights side by side; the loop
broadcasts x[k] and adds w * x[k] (a fused multiply-add where the CPU has one) to four
<8 x float> sums, one lane a row, k in order: no horizontal reduction, one load per
multiply. Measured here (the products of a 2x256 LSTM step, 3.2 MB): 0.61x the time of
one row at a time with reassociated partial sums, 0.63x numpy's (OpenBLAS) ``np.dot``.

int8 (``panel_dot8``: ``panel_dot8_vnni`` on AVX-512 VNNI, else ``panel_dot8_avx2``):

The weights of an int8 product are laid out in panels (``panels.panels``): 32 rows
at a time, and for each quad of columns k .. k + 3 the 32 rows' four bytes side by side
(128 bytes). One pass over a panel keeps four <8 x i32> sums, one per 8 rows: the quad of
inputs q[k .. k + 3] is broadcast to every 32-bit lane, ``vpmaddubsw`` multiplies it with
the 32 weight bytes of 8 rows and adds the pairs into int16, and ``vpmaddwd`` by ones adds
the two pairs of each row into its int32 lane. Every lane is one row's sum: no horizontal
reduction at all, the layout onnxruntime's and other int8 GEMV kernels use, and the one
AVX-512 VNNI's ``vpdpbusd`` takes unchanged (one instruction for the two multiplies).

AVX2 multiplies bytes only as unsigned x signed (u8 * s8, pairs summed into saturating
int16). The weights w are int8 in [-127, 127] (``quantize_rows``): flipping their top bit
on load gives the unsigned w + 128 in [1, 255]; the inputs q are int8 in [-Q_X, Q_X] =
[-64, 64] (``panels.quantize``: 7 bits and a sign), so a pair sums to at most
2 * 255 * 64 = 32640 < 2^15: nothing saturates and the sum is exact. Then
sum(w q) = sum((w + 128) q) - 128 sum(q), with sum(q) over the same columns given by the
caller: one number per input vector and range.

Measured on this project's AMD EPYC (AVX2, no VNNI), the int8 products of a 2x256 LSTM step
and its output layer (1,024 x 256, 1,024 x 512, 65 x 256), µs per step: 8-bit inputs with
the sign trick (|w| * (q sign w), four instructions a 32-byte block), one row at a time,
21.7; offset weights and 7-bit inputs, four rows sharing the loads of q, 16.7 (sums
reduced across lanes at the end of each row); panels, 12.6. 7-bit weights with 8-bit
inputs (onnxruntime's ``reduce_range``) measured about as fast but with 1.75x the rms
error, where 7-bit inputs add 17% (tanh-like inputs).

With AVX-512 VNNI (and VL), ``vpdpbusd`` on the same 256-bit blocks does the multiply,
the pair sums and the accumulation in one instruction, u8 x s8 like ``vpmaddubsw`` and with
no int16 step; it takes the same flipped weights and 7-bit inputs, so both paths give the
same int32 sums, bit for bit (an int8 model answers alike on either CPU). On this project's
AMD EPYC (Zen 4): a 512 x 128 product (the classifier's step, 64 KB from L2) 0.62 ->
0.58 µs, 1,024 x 512 (512 KB) 5.5 -> 4.9 µs: the products are bound by the bytes they
read, not by the instructions.

numba has no vector types, so the loops are LLVM IR written here (``intrinsic``s).
``HAS_AVX2`` (``HAS_VNNI``) says whether numba compiles for a CPU that has it
(``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES`` included); callers use ``panel_dot8`` only
with AVX2. Not here: the layout, the plain loops and the dispatch (``panels.panel_dot``, ``panels.panel_dot_f32``).
Also here, for the kernels' steps: ``flat``, a 1-d view of a C-contiguous array.
"""

from llvmlite import ir  # numba's code generator, installed with it
from numba import types
from numba.core import cgutils, config
from numba.core.imputils import impl_ret_borrowed
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

# what numba compiles for (its JIT codegen's rule): NUMBA_CPU_FEATURES when set, which
# NUMBA_CPU_NAME sets to "" (a portable build: no AVX2 intrinsic may be emitted), else the host's
_FEATURES = (get_host_cpu_features() if config.CPU_FEATURES is None
             else config.CPU_FEATURES).split(",")
HAS_AVX2 = "+avx2" in _FEATURES
HAS_VNNI = HAS_AVX2 and {"+avx512vnni", "+avx512vl"} <= set(_FEATURES)
PANEL = 32    # rows per panel: four <8 x i32> sums
QUAD = 4      # columns per lane: four bytes, one 32-bit lane
Q_X = 64      # the largest |q|: 2 * 255 * Q_X must stay within int16
OFFSET = 128  # w + OFFSET is w with its top bit flipped, as unsigned

I8, I16, I32, I64 = (ir.IntType(n) for n in (8, 16, 32, 64))
V32I8, V16I16, V8I32 = ir.VectorType(I8, 32), ir.VectorType(I16, 16), ir.VectorType(I32, 8)
F32 = ir.FloatType()
V8F32 = ir.VectorType(F32, 8)
CONTRACT = ("contract",)  # w * x + acc may become one fused multiply-add


def _function(module, name, ret, args):
    return cgutils.get_or_insert_function(module, ir.FunctionType(ret, args), name)


def _loop(builder, name, start, stop, accs0, step):
    """Emit ``for i in range(start, stop): accs = step(i, accs)``; returns the final accs."""
    entry = builder.block
    test = builder.append_basic_block(f"{name}.test")
    body = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(test)
    builder.position_at_end(test)
    i = builder.phi(I64)
    accs = [builder.phi(acc.type) for acc in accs0]
    i.add_incoming(start, entry)
    for acc, acc0 in zip(accs, accs0):
        acc.add_incoming(acc0, entry)
    builder.cbranch(builder.icmp_signed("<", i, stop), body, done)
    builder.position_at_end(body)
    new = step(i, accs)
    i.add_incoming(builder.add(i, ir.Constant(I64, 1)), builder.block)
    for acc, value in zip(accs, new):
        acc.add_incoming(value, builder.block)
    builder.branch(test)
    builder.position_at_end(done)
    return accs


def _int(builder, value, to):
    """An integer of numba's (int8 .. int64) as ``to``, sign-extended or truncated."""
    width = value.type.width
    return value if width == to.width else (builder.trunc(value, to) if width > to.width
                                            else builder.sext(value, to))


def _splat(builder, value, vector):
    one = builder.insert_element(ir.Constant(vector, None), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(I32, vector.count),
                                                        [0] * vector.count))


def _over_panels(builder, p, etype, stride, k0, k1, zero, column, finish):
    """Emit, for each panel i of array ``p``: four sums start at ``zero``, ``accs =
    column(start, k, accs)`` for k in [k0, k1) (``start``: the panel's first element), then
    ``finish(i, accs)``. ``stride``: elements a panel holds per column (or quad)."""
    panels, columns = (builder.extract_value(p.shape, i) for i in range(2))
    width = builder.mul(columns, ir.Constant(I64, stride))

    def panel(i, _):
        start = builder.gep(p.data, [builder.mul(i, width)], source_etype=etype)
        accs = _loop(builder, "panel.columns", k0, k1, [zero] * 4,
                     lambda k, accs: column(start, k, accs))
        finish(i, accs)
        return [ir.Constant(I32, 0)]
    _loop(builder, "panel.rows", ir.Constant(I64, 0), panels, [ir.Constant(I32, 0)], panel)


def _block(builder, start, k, stride, b, etype, vector):
    """Block b (8 rows) of column k of a panel starting at ``start``, as a vector."""
    at = builder.add(builder.mul(k, ir.Constant(I64, stride)),
                     ir.Constant(I64, b * stride // 4))
    return builder.load(builder.gep(start, [at], source_etype=etype), typ=vector,
                        align=1 if etype == I8 else 4)


def _store(builder, out, vector, i, accs):
    """out[32 i .. 32 i + 31] = the four sums of panel i."""
    sums = builder.bitcast(out.data, vector.as_pointer())
    for b, acc in enumerate(accs):
        where = builder.add(builder.mul(i, ir.Constant(I64, 4)), ir.Constant(I64, b))
        builder.store(acc, builder.gep(sums, [where], source_etype=vector), align=4)


def _int8_product(vnni):
    """``panel_dot8`` as an intrinsic: ``vpdpbusd`` a block with ``vnni``, else AVX2's
    ``vpmaddubsw`` and ``vpmaddwd`` by ones; the same exact int32 sums either way."""
    @intrinsic
    def product(typingctx, P, q, k0, k1, total, out):
        def codegen(context, builder, signature, args):
            p = context.make_array(signature.args[0])(context, builder, args[0])
            x = context.make_array(signature.args[1])(context, builder, args[1])
            o = context.make_array(signature.args[5])(context, builder, args[5])
            k0, k1 = (_int(builder, v, I64) for v in args[2:4])
            module = builder.module
            if vnni:
                dpbusd = _function(module, "llvm.x86.avx512.vpdpbusd.256", V8I32,
                                   [V8I32, V8I32, V8I32])
            else:
                maddubs = _function(module, "llvm.x86.avx2.pmadd.ub.sw", V16I16, [V32I8, V32I8])
                maddwd = _function(module, "llvm.x86.avx2.pmadd.wd", V8I32, [V16I16, V16I16])
            ones = ir.Constant(V16I16, [1] * 16)
            flip = ir.Constant(V32I8, [-OFFSET] * 32)  # 0x80 in every byte
            total = _int(builder, args[4], I32)
            offset = _splat(builder, builder.mul(total, ir.Constant(I32, OFFSET)), V8I32)
            lanes = builder.bitcast(x.data, I32.as_pointer())  # q, four bytes a lane

            def quad(start, k, accs):
                four = builder.load(builder.gep(lanes, [k], source_etype=I32), typ=I32, align=1)
                q4 = _splat(builder, four, V8I32)
                qv = builder.bitcast(q4, V32I8)
                out = []
                for b, acc in enumerate(accs):
                    w = builder.xor(_block(builder, start, k, PANEL * QUAD, b, I8, V32I8), flip)
                    if vnni:  # acc + the four (w + 128) q of each lane, in one instruction
                        out.append(builder.call(dpbusd, [acc, builder.bitcast(w, V8I32), q4]))
                        continue
                    pairs = builder.call(maddubs, [w, qv])  # (w + 128) q, pairs in int16
                    out.append(builder.add(acc, builder.call(maddwd, [pairs, ones])))
                return out

            def finish(i, accs):
                _store(builder, o, V8I32, i, [builder.sub(acc, offset) for acc in accs])
            _over_panels(builder, p, I8, PANEL * QUAD, k0, k1, ir.Constant(V8I32, None), quad,
                         finish)
            return context.get_dummy_value()
        return types.void(P, q, k0, k1, total, out), codegen
    return product


panel_dot8_avx2 = _int8_product(False)
panel_dot8_vnni = _int8_product(True)
panel_dot8 = panel_dot8_vnni if HAS_VNNI else panel_dot8_avx2
panel_dot8.__doc__ = """out[32 p + r] = sum of row r of panel p times q over the columns of quads
[k0, k1), exact: P (panels, quads, 128) int8 in [-127, 127], C-contiguous; q int8 in [-64,
64], contiguous, at least 4 * k1 long; ``total`` the sum of q[4 k0 : 4 k1]; out int32, at
least 32 * panels long. ``panel_dot8_vnni`` where the CPU has AVX-512 VNNI, else
``panel_dot8_avx2`` (AVX2 required)."""


@intrinsic
def panel_dot32(typingctx, P, x, k0, k1, out):
    """out[32 p + r] = row r of panel p . x over columns [k0, k1), summed in column order:
    P (panels, columns, 32) float32, C-contiguous; x float32 contiguous; out float32, at
    least 32 * panels long."""
    def codegen(context, builder, signature, args):
        p = context.make_array(signature.args[0])(context, builder, args[0])
        v = context.make_array(signature.args[1])(context, builder, args[1])
        o = context.make_array(signature.args[4])(context, builder, args[4])
        k0, k1 = (_int(builder, a, I64) for a in args[2:4])

        def column(start, k, accs):
            xk = _splat(builder, builder.load(builder.gep(v.data, [k], source_etype=F32),
                                              typ=F32), V8F32)
            return [builder.fadd(acc, builder.fmul(_block(builder, start, k, PANEL, b, F32, V8F32),
                                                   xk, flags=CONTRACT), flags=CONTRACT)
                    for b, acc in enumerate(accs)]
        _over_panels(builder, p, F32, PANEL, k0, k1, ir.Constant(V8F32, None), column,
                     lambda i, accs: _store(builder, o, V8F32, i, accs))
        return context.get_dummy_value()
    return types.void(P, x, k0, k1, out), codegen


@intrinsic
def flat(typingctx, a):
    """A C-contiguous array as a 1-d view of all its elements, without numba's ``reshape``,
    which calls a C helper (10 ns) to find a layout that is known here: a few of those per
    step were 3% of a small model's step."""
    if not isinstance(a, types.Array) or a.layout != "C":
        return None
    flat_type = a.copy(ndim=1)

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        out = context.make_array(flat_type)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(
            context.get_data_type(a.dtype)))
        populate_array(out, data=src.data, shape=[src.nitems], strides=[itemsize],
                       itemsize=itemsize, meminfo=src.meminfo, parent=src.parent)
        return impl_ret_borrowed(context, builder, flat_type, out._getvalue())
    return flat_type(a), codegen
