using PostTrain.Checkpoints;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PostTrain.Training;

/// <summary>
/// AdamW (decoupled weight decay) as torch.optim.AdamW computes it, with weight decay only on
/// matrices: biases, norm weights and other one-dimensional parameters get none (as
/// transformers' Trainer groups them). Its state (step, first and second moments) saves to
/// and loads from safetensors, so a resumed run continues bit for bit.
/// </summary>
public sealed class AdamW : IDisposable
{
    readonly List<(string Name, Parameter Param, Tensor M, Tensor V, bool Decay)> slots = new();
    readonly double beta1, beta2, eps, weightDecay;

    public long Step { get; private set; }

    public AdamW(IEnumerable<(string Name, Parameter Param)> parameters, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0.0)
    {
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.weightDecay = weightDecay;
        foreach (var (name, p) in parameters)
        {
            if (!p.requires_grad) continue;
            slots.Add((name, p, zeros_like(p), zeros_like(p), DecaysWeight(name, p)));
        }
    }

    /// <summary>Weight decay applies to weight matrices, not to biases or norm weights.</summary>
    public static bool DecaysWeight(string name, Tensor p) =>
        p.dim() >= 2 && !name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains("norm", StringComparison.Ordinal);

    public IEnumerable<Parameter> Parameters => slots.Select(s => s.Param);

    /// <summary>One update with learning rate <paramref name="lr"/>; parameters without a gradient are skipped.</summary>
    public void Update(double lr)
    {
        Step++;
        double bias1 = 1 - Math.Pow(beta1, Step);
        double bias2 = 1 - Math.Pow(beta2, Step);
        double stepSize = lr / bias1;
        double bias2Sqrt = Math.Sqrt(bias2);
        using var noGrad = no_grad();
        foreach (var (_, p, m, v, decay) in slots)
        {
            using var scope = NewDisposeScope();
            var g = p.grad;
            if (g is null) continue;
            if (decay && weightDecay != 0) p.mul_(1 - lr * weightDecay);
            m.lerp_(g, 1 - beta1);
            v.mul_(beta2).addcmul_(g, g, 1 - beta2);
            var denom = (v.sqrt() / bias2Sqrt).add_(eps);
            p.addcdiv_(m, denom, -stepSize);
        }
    }

    public void ZeroGrad()
    {
        using var scope = NewDisposeScope(); // each .grad is a new wrapper of the native gradient
        foreach (var s in slots)
            s.Param.grad?.zero_();
    }

    /// <summary>Saves step and moments as safetensors: NAME.exp_avg, NAME.exp_avg_sq.</summary>
    public void Save(string path)
    {
        var tensors = new List<(string, Tensor)>();
        foreach (var (name, _, m, v, _) in slots)
        {
            tensors.Add((name + ".exp_avg", m));
            tensors.Add((name + ".exp_avg_sq", v));
        }
        SafeTensorsFile.Write(path, tensors, metadata: new Dictionary<string, string> { ["step"] = Step.ToString(System.Globalization.CultureInfo.InvariantCulture) });
    }

    public void Load(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("step", out var step) || !long.TryParse(step, out var s))
            throw new InputError($"{path}: optimizer state has no step in its metadata");
        foreach (var (name, _, m, v, _) in slots)
        {
            foreach (var (suffix, target) in new[] { (".exp_avg", m), (".exp_avg_sq", v) })
            {
                if (!file.Tensors.TryGetValue(name + suffix, out var info))
                    throw new InputError($"{path}: missing optimizer state '{name + suffix}'");
                if (!info.Shape.SequenceEqual(target.shape) || info.DType != "F32")
                    throw new InputError($"{path}: optimizer state '{name + suffix}' does not fit the parameter");
                file.CopyInto(info, target);
            }
        }
        Step = s;
    }

    public void Dispose()
    {
        foreach (var s in slots)
        {
            s.M.Dispose();
            s.V.Dispose();
        }
        slots.Clear();
    }
}
