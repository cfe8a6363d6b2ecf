"""The GRU loop with a per-sample recurrent dropout mask, differentiated by hand, for the PyTorch path.

With the compiled CPU kernel (``rnnkit.layers.kernel``) the layers do not use it; it serves
``use_kernel("torch")`` (and GPUs), where PyTorch has no fused operator for per-sample
recurrent dropout, and stands as a second reference for the kernel's GRU in the tests. The
step loop over ``GRUCell.step`` remains the reference for both.
"""

from __future__ import annotations

import torch


class GRUSequenceWithRecurrentMask(torch.autograd.Function):
    """The whole GRU (reset_after, tanh/sigmoid) loop with a per-sample recurrent mask, hand-differentiated.

    The step loop over ``GRUCell.step`` is the reference; this runs the same maths with no
    autograd graph per step, so that Keras's per-sample ``recurrent_dropout`` stays close to
    the fused kernel's speed. On a CPU a step of this size (batch 256, 32 units) costs little
    more than its memory traffic and the dispatch of its operations, so: buffers for all
    steps are allocated once and walked with views made before the loop; the coefficients
    that backward needs are computed in the forward step, while its values are in cache;
    backward takes five operations a step; the weight gradient is one matmul over all steps.

    ``apply(xp, h0, recurrent_kernel, bias_hh, mask)``: xp (time, batch, 3n) projected inputs
    in gate order r, z, n; h0 (batch, n); recurrent_kernel (n, 3n); bias_hh (3n,) or None;
    mask (batch, n). Returns h for every step, (time, batch, n).

    Example::

        xp, h0, u, b = torch.randn(5, 2, 9), torch.zeros(2, 3), torch.randn(3, 9), torch.zeros(9)
        mask = torch.tensor([[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]])
        hs = GRUSequenceWithRecurrentMask.apply(xp, h0, u, b, mask)   # (5, 2, 3)
    """

    @staticmethod
    def forward(ctx, xp, h0, recurrent_kernel, bias_hh, mask):
        steps, batch, three_n = xp.shape
        n = three_n // 3
        # G (time, batch, 4n), blocks [k_r, r, z, U_n (h ⊙ m) + b'_n]. It starts as
        # [-, x_r + b'_r, x_z + b'_z, b'_n], so that one in-place addmm per step adds U (h ⊙ m).
        # k_r = r (1 − r)(U_n h + b'_n) sits next to r: backward makes g_r and g_n with one product.
        G = xp.new_empty(steps, batch, 4 * n)
        if bias_hh is None:
            G[..., n : 3 * n].copy_(xp[..., : 2 * n])
            G[..., 3 * n :].zero_()
        else:
            torch.add(xp[..., : 2 * n], bias_hh[: 2 * n], out=G[..., n : 3 * n])
            G[..., 3 * n :].copy_(bias_hh[2 * n :].expand(steps, batch, n))
        H = xp.new_empty(steps, batch, n)
        HM = xp.new_empty(steps, batch, n)  # h_{t-1} ⊙ m, the recurrent kernel's input
        # KZN (time, batch, 2, n): [(h_{t-1} − h̃) z (1 − z), (1 − h̃²)(1 − z)], dh_t -> d pre-z, d pre-tanh
        KZN = xp.new_empty(steps, batch, 2, n)
        cand = xp.new_empty(batch, n)  # candidate h̃
        one_minus_z = xp.new_empty(batch, n)
        one = xp.new_ones(())
        views = zip(
            xp[..., 2 * n :].unbind(0), G[..., n:].unbind(0), G[..., n : 3 * n].unbind(0), G[..., :n].unbind(0),
            G[..., 3 * n :].unbind(0), H.unbind(0), HM.unbind(0), KZN.unbind(0),
        )  # fmt: skip
        h = h0
        for xp_n, gates, rz, k_r, ghn, h_out, hm_out, kzn in views:
            hm = torch.mul(h, mask, out=hm_out)
            gates.addmm_(hm, recurrent_kernel)  # [r, z, U_n (h ⊙ m) + b'_n] pre-activations
            r, z = rz.sigmoid_().split(n, 1)
            torch.addcmul(xp_n, r, ghn, out=cand).tanh_()
            h_new = torch.lerp(cand, h, z, out=h_out)  # z ⊙ h + (1 − z) ⊙ h̃
            # h_t − h̃ == z (h_{t-1} − h̃)
            torch.sub(one, z, out=one_minus_z)
            k_z, k_n = kzn.unbind(1)
            torch.sub(h_new, cand, out=k_z).mul_(one_minus_z)
            torch.addcmul(one, cand, cand, value=-1.0, out=k_n).mul_(one_minus_z)
            torch.addcmul(r, r, r, value=-1.0, out=k_r).mul_(ghn)
            h = h_new
        ctx.save_for_backward(H, h0, recurrent_kernel, mask)
        # intermediates, not inputs or outputs: kept on ctx
        ctx.G, ctx.HM, ctx.KZN = G, HM, KZN
        ctx.has_bias = bias_hh is not None
        return H

    @staticmethod
    def backward(ctx, dH):
        H, h0, recurrent_kernel, mask = ctx.saved_tensors
        G, HM, KZN = ctx.G, ctx.HM, ctx.KZN
        steps, batch, n = H.shape
        # W (time, batch, 4n), blocks [g_r, g_z, da, g_n]: [g_r, g_z, da] is the gradient of xp
        # (r, z, n) and [g_r, g_z, g_n] that of U (h ⊙ m) + b'; the recurrent kernel gets a zero
        # block at da so that one matmul per step takes the gradient back to h ⊙ m.
        W = H.new_empty(steps, batch, 4 * n)
        u = recurrent_kernel
        kernel4 = torch.cat([u[:, : 2 * n], torch.zeros_like(u[:, :n]), u[:, 2 * n :]], 1).t()  # (4n, n)
        back = H.new_empty(batch, n)
        e_buf = (H.new_empty(batch, n), H.new_empty(batch, n))
        Wv = W.view(steps, batch, 4, n)
        views = zip(
            W.unbind(0), Wv[:, :, 1:3].unbind(0), Wv[:, :, 2:3].unbind(0), Wv[:, :, 0::3].unbind(0),
            KZN.unbind(0), G.view(steps, batch, 4, n)[:, :, :2].unbind(0), G[..., 2 * n : 3 * n].unbind(0),
        )  # fmt: skip
        e = dH[steps - 1]  # gradient of h_t, (batch, n)
        for t, (w, w_za, w_a, w_rn, kzn, k_r_and_r, z) in reversed(list(enumerate(views))):
            torch.mul(e.unsqueeze(1), kzn, out=w_za)  # [g_z, da]
            torch.mul(w_a, k_r_and_r, out=w_rn)  # [g_r, g_n]
            torch.mm(w, kernel4, out=back)
            if t > 0:
                e = torch.addcmul(dH[t - 1], e, z, out=e_buf[t % 2])
            else:
                e = torch.mul(e, z, out=e_buf[0])
            e.addcmul_(back, mask)
        flat = W.view(steps * batch, 4 * n)
        d_kernel = d_bias = None
        if ctx.needs_input_grad[2]:
            d_kernel4 = HM.view(steps * batch, n).t().mm(flat)  # (n, 4n)
            d_kernel = torch.cat([d_kernel4[:, : 2 * n], d_kernel4[:, 3 * n :]], 1)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            d_bias4 = torch.mv(flat.t(), flat.new_ones(steps * batch))  # column sums (BLAS is faster than sum(0))
            d_bias = torch.cat([d_bias4[: 2 * n], d_bias4[3 * n :]])
        return W[..., : 3 * n], e, d_kernel, d_bias, None
