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
    public static Tensor Apply(DecoderLayer layer, Tensor x, Tensor cos, Tensor sin, Tensor? mask) =>
        apply(layer, x, cos, sin, mask!);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var layer = (DecoderLayer)vars[0];
        var x = (Tensor)vars[1];
        ctx.save_for_backward([x]);
        ctx.save_data("layer", layer);
        ctx.save_data("cos", vars[2]);
        ctx.save_data("sin", vars[3]);
        ctx.save_data("mask", vars[4]);
        using var noGrad = no_grad();
        return layer.Forward(x, (Tensor)vars[2], (Tensor)vars[3], vars[4] as Tensor);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var layer = (DecoderLayer)ctx.get_data("layer");
        var x = ctx.get_saved_variables()[0];
        using var enable = enable_grad();
        using var input = x.detach().requires_grad_(true);
        using (var scope = NewDisposeScope())
        {
            var y = layer.Forward(input, (Tensor)ctx.get_data("cos"), (Tensor)ctx.get_data("sin"), ctx.get_data("mask") as Tensor);
            y.backward([gradOutput]);
        }
        var gradInput = input.grad ?? zeros_like(x);
        // One gradient per forward argument: the layer, x, cos, sin, mask.
        return [null!, gradInput.detach().MoveToOuterDisposeScope(), null!, null!, null!];
    }
}
