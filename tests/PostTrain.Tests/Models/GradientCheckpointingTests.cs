using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Tests.Models;

public class GradientCheckpointingTests
{
    [Fact]
    public void CheckpointedLayerGivesTheSameOutputAndGradients()
    {
        var config = TestModels.Config(Architecture.Qwen3);
        using var model = TestModels.Random(config, seed: 21);
        var layer = model.Model.Layers[0];
        using var rotary = new RotaryEmbedding(config);
        using var scope = NewDisposeScope();
        var (cos, sin) = rotary.CosSin(arange(6, dtype: ScalarType.Int64).unsqueeze(0).expand(2, 6), ScalarType.Float32);
        var weights = randn(2, 6, 32, generator: new TorchSharp.torch.Generator(3));

        Dictionary<string, Tensor> Run(bool checkpointed, out Tensor output, out Tensor inputGrad)
        {
            model.zero_grad();
            var x = randn(2, 6, 32, generator: new TorchSharp.torch.Generator(4)).requires_grad_(true);
            output = checkpointed ? CheckpointedLayer.Apply(layer, x, cos, sin, null, new TorchSharp.torch.Generator(0)) : layer.Forward(x, cos, sin, null);
            (output * weights).sum().backward();
            inputGrad = x.grad!.clone();
            return layer.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }

        var plain = Run(false, out var y1, out var gx1);
        var ckpt = Run(true, out var y2, out var gx2);
        Assert.True(TestModels.MaxAbsDiff(y1, y2) < 1e-6f);
        Assert.True(TestModels.MaxAbsDiff(gx1, gx2) < 1e-5f);
        foreach (var (name, g) in plain)
            Assert.True(TestModels.MaxAbsDiff(g, ckpt[name]) < 1e-5f, name);
    }

    [Fact]
    public void WholeModelGradientsMatchWithCheckpointing()
    {
        using var model = TestModels.Random(TestModels.Config(Architecture.Llama), seed: 22);
        var ids = TestModels.Ids([5, 9, 13, 2, 40, 41], [7, 8, 9, 10, 11, 12]);
        Dictionary<string, Tensor> Grads(bool checkpointing)
        {
            model.GradientCheckpointing = checkpointing;
            model.zero_grad();
            using var scope = NewDisposeScope();
            model.Forward(ids).log_softmax(-1).narrow(2, 0, 3).sum().backward();
            return model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone().MoveToOuterDisposeScope());
        }
        var plain = Grads(false);
        var ckpt = Grads(true);
        foreach (var (name, g) in plain)
            Assert.True(TestModels.MaxAbsDiff(g, ckpt[name]) < 1e-5f, name);
        model.GradientCheckpointing = false;
    }
}
