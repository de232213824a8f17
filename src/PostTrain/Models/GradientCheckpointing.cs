using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// Activation (gradient) checkpointing of one decoder layer: the forward pass runs without
/// recording the graph, keeping only the layer's input; backward runs the layer again with the
/// graph and back-propagates through it, as torch.utils.checkpoint does with use_reentrant.
/// Memory per layer drops from all its activations to its input, for one more forward in backward.
/// </summary>
public sealed class CheckpointedLayer : autograd.SingleTensorFunction<CheckpointedLayer>
{
    public override string Name => nameof(CheckpointedLayer);

    /// <summary>The layer's output for <paramref name="x"/>, recomputed in backward.</summary>
    /// <param name="dropout">The generator of the layer's dropout masks: replayed in backward so the recomputation draws the same masks.</param>
    public static Tensor Apply(DecoderLayer layer, Tensor x, Tensor cos, Tensor sin, Tensor? mask, Generator dropout) =>
        apply(layer, x, cos, sin, mask!, dropout);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var layer = (DecoderLayer)vars[0];
        var (x, cos, sin, mask) = ((Tensor)vars[1], (Tensor)vars[2], (Tensor)vars[3], vars[4] as Tensor);
        // Saved through autograd, so they outlive the dispose scope of the forward pass.
        ctx.save_for_backward(mask is null ? [x, cos, sin] : [x, cos, sin, mask]);
        ctx.save_data("layer", layer);
        // The recomputation must draw the same dropout masks (LoRA dropout) as this pass.
        var generator = (Generator)vars[5];
        ctx.save_data("generator", generator);
        ctx.save_data("rng", generator.get_state().DetachFromDisposeScope()); // disposed in backward
        using var noGrad = no_grad();
        using var sameKernels = Gemv.Suspend(); // as the recomputation with autograd will compute it
        return layer.Forward(x, cos, sin, mask);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var layer = (DecoderLayer)ctx.get_data("layer");
        var saved = ctx.get_saved_variables();
        var x = saved[0];
        using var enable = enable_grad();
        using var input = x.detach().requires_grad_(true);
        using (var scope = NewDisposeScope())
        {
            var generator = (Generator)ctx.get_data("generator");
            var now = generator.get_state();
            using (var rng = (Tensor)ctx.get_data("rng")) generator.set_state(rng);
            var y = layer.Forward(input, saved[1], saved[2], saved.Count > 3 ? saved[3] : null);
            generator.set_state(now);
            y.backward([gradOutput]);
        }
        Tensor gradInput;
        using (var g = input.grad) // a new wrapper of the native gradient: dispose it
            gradInput = g is null ? zeros_like(x) : g.detach();
        foreach (var t in saved) t.Dispose(); // wrappers made by get_saved_variables
        // One gradient per forward argument: the layer, x, cos, sin, mask, generator. The gradient stays in
        // the caller's dispose scope (around backward()): autograd copies it before that ends.
        return [null!, gradInput, null!, null!, null!, null!];
    }
}
