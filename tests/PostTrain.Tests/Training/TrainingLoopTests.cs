using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;
using PostTrain.Trainers;
using PostTrain.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Tests.Training;

public class TrainingLoopTests
{
    static CausalLM Tiny(long seed = 0) => TestModels.Random(TestModels.Config(Architecture.Qwen2, tied: true), seed, std: 0.1);

    static List<JsonObject> Metrics(string dir) =>
        File.ReadAllLines(Path.Combine(dir, RunLog.MetricsFile)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void SchedulesFollowTransformers()
    {
        var linear = new LearningRateSchedule(1.0, LrScheduler.Linear, 2, 10);
        Assert.Equal([0.0, 0.5, 1.0, 0.875, 0.5, 0.125], new[] { 0, 1, 2, 3, 6, 9 }.Select(linear.At));
        var cosine = new LearningRateSchedule(1.0, LrScheduler.Cosine, 0, 10);
        Assert.Equal(0.5 * (1 + Math.Cos(Math.PI * 0.3)), cosine.At(3), 12);
        var constant = new LearningRateSchedule(2.0, LrScheduler.Constant, 4, 10);
        Assert.Equal([1.0, 2.0, 2.0], new[] { 2, 4, 9 }.Select(constant.At));
        Assert.Equal(3, LearningRateSchedule.For(new TrainingOptions { WarmupRatio = 0.25 }, 10).WarmupSteps);
    }

    [Fact]
    public void AdamWMatchesTheFormulaAndSkipsDecayOnNormsAndBiases()
    {
        var w = new TorchSharp.Modules.Parameter(tensor(new float[] { 1f, -2f, 3f, 0.5f }, [2, 2]));
        var b = new TorchSharp.Modules.Parameter(tensor(new float[] { 0.5f, -0.5f }));
        using var opt = new AdamW([("layer.weight", w), ("layer.bias", b)], 0.9, 0.999, 1e-8, weightDecay: 0.1);
        double[] wv = [1, -2, 3, 0.5], bv = [0.5, -0.5], m = new double[4], v = new double[4], mb = new double[2], vb = new double[2];
        for (int step = 1; step <= 3; step++)
        {
            double[] g = [0.1 * step, -0.2, 0.3, 0.05 * step], gb = [0.2, -0.1 * step];
            w.grad = tensor(g.Select(x => (float)x).ToArray(), [2, 2]);
            b.grad = tensor(gb.Select(x => (float)x).ToArray());
            opt.Update(0.01);
            void Reference(double[] p, double[] grad, double[] m1, double[] v1, bool decay)
            {
                for (int i = 0; i < p.Length; i++)
                {
                    if (decay) p[i] *= 1 - 0.01 * 0.1;
                    m1[i] = 0.9 * m1[i] + 0.1 * grad[i];
                    v1[i] = 0.999 * v1[i] + 0.001 * grad[i] * grad[i];
                    double mh = m1[i] / (1 - Math.Pow(0.9, step)), vh = v1[i] / (1 - Math.Pow(0.999, step));
                    p[i] -= 0.01 * mh / (Math.Sqrt(vh) + 1e-8);
                }
            }
            Reference(wv, g, m, v, decay: true);
            Reference(bv, gb, mb, vb, decay: false);
        }
        var got = w.data<float>().ToArray();
        for (int i = 0; i < 4; i++) Assert.Equal(wv[i], got[i], 1e-6);
        var gotB = b.data<float>().ToArray();
        for (int i = 0; i < 2; i++) Assert.Equal(bv[i], gotB[i], 1e-6);
        Assert.False(AdamW.DecaysWeight("model.norm.weight", ones(4)));
        Assert.False(AdamW.DecaysWeight("model.layers.0.self_attn.q_norm.weight", ones(4)));
        Assert.True(AdamW.DecaysWeight("model.layers.0.mlp.up_proj.weight", ones(4, 4)));
    }

    [Fact]
    public void MemorisesTwentyShortAnswers()
    {
        var data = SyntheticData.PromptAnswers(20, seed: 1);
        using var model = Tiny(1);
        var dir = TestModels.TempDir();
        var options = new SftOptions { LearningRate = 1e-2, BatchSize = 10, Epochs = 60, LrScheduler = LrScheduler.Constant, LoggingSteps = 20, SaveSteps = 0 };
        var result = new Trainer<TokenizedSequence>(model, new SftMethod(), data, data, options, dir, null).Train(TextWriter.Null);
        Assert.Equal(120, result.TotalSteps);
        var lines = Metrics(dir);
        double first = lines[0]["loss"]!.GetValue<double>(), last = result.FinalEvalLoss!.Value;
        Assert.True(first > 2.0, $"first logged loss {first}");
        Assert.True(last < 0.05, $"final eval loss {last}");
        Assert.True(lines.Last()["eval_mean_token_accuracy"]!.GetValue<double>() > 0.99);
        // Entropy falls as the answers are memorised (TRL's entropy metric, train and eval).
        Assert.True(lines[0]["entropy"]!.GetValue<double>() > 1.0, $"first entropy {lines[0]["entropy"]}");
        Assert.True(lines.Last()["eval_entropy"]!.GetValue<double>() < 0.2, $"final eval entropy {lines.Last()["eval_entropy"]}");
        // The final model, with its files, loads back and scores the answers as memorised.
        using var reloaded = HfCheckpoint.Load(dir);
        var scores = TokenScorer.LogProbs(reloaded, data.Select(d => d.InputIds).ToList());
        for (int i = 0; i < data.Count; i++)
            for (int t = 1; t < data[i].Length; t++)
                if (data[i].Trained[t]) Assert.True(scores[i][t] > -0.2, $"sequence {i} token {t}: {scores[i][t]}");
    }

    [Fact]
    public void LossCountsOnlyTrainedTokens()
    {
        var data = SyntheticData.PromptAnswers(5, seed: 2);
        using var model = Tiny(2);
        using var scope = NewDisposeScope();
        var output = new SftMethod().Loss(model, data);
        double items = new SftMethod().CountItems(data);
        var lp = TokenScorer.LogProbs(model, data.Select(d => d.InputIds).ToList());
        double expected = -data.SelectMany((d, i) => Enumerable.Range(1, d.Length - 1).Where(t => d.Trained[t]).Select(t => (double)lp[i][t])).Sum();
        Assert.Equal(expected, output.LossSum.item<float>(), 1e-3);
        Assert.Equal(data.Sum(d => d.Trained.Count(x => x)), items);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ChunkedLossEqualsTheFullLogitsLoss(bool tied)
    {
        var data = SyntheticData.PromptAnswers(6, seed: 9);
        using var model = TestModels.Random(TestModels.Config(Architecture.Llama, tied), 9, std: 0.1);
        (double Loss, double Correct, double Entropy, Dictionary<string, Tensor> Grads) Run(SftMethod method)
        {
            model.zero_grad();
            using var scope = NewDisposeScope();
            var output = method.Loss(model, data);
            output.LossSum.backward();
            return (output.LossSum.item<float>(), output.MetricSums["mean_token_accuracy"], output.MetricSums["entropy"],
                model.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!.clone().MoveToOuterDisposeScope()));
        }
        var full = Run(new SftMethod());
        var chunked = Run(new SftMethod(logitsBytesLimit: 0, chunkBytes: 96 * 4 * 5)); // chunks of 5 rows
        Assert.Equal(full.Loss, chunked.Loss, 1e-4);
        Assert.Equal(full.Correct, chunked.Correct);
        Assert.Equal(full.Entropy, chunked.Entropy, 1e-3);
        foreach (var (name, g) in full.Grads)
            Assert.True(TestModels.MaxAbsDiff(g, chunked.Grads[name]) < 1e-5f, $"{name}: {TestModels.MaxAbsDiff(g, chunked.Grads[name])}");
        // Evaluation (no gradient) goes through the same path.
        using (no_grad())
        using (NewDisposeScope())
            Assert.Equal(full.Loss, new SftMethod(0, 96 * 4 * 5).Loss(model, data).LossSum.item<float>(), 1e-4);
    }

    /// <summary>
    /// TRL's SFTTrainer metrics: the entropy of the predicted distribution and whether its argmax is
    /// the label, over the trained tokens; checked against the full logits of a plain forward.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EntropyAndAccuracyAreThoseOfTheTrainedTokens(bool chunked)
    {
        var data = SyntheticData.PromptAnswers(6, seed: 11);
        using var model = Tiny(11);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        double entropy = 0, correct = 0;
        foreach (var d in data)
        {
            var logits = model.Logits(model.ForwardHidden(tensor(d.InputIds.Select(x => (long)x).ToArray(), [1, d.Length])))[0].to(ScalarType.Float64);
            for (int t = 1; t < d.Length; t++)
            {
                if (!d.Trained[t]) continue;
                var p = logits[t - 1].softmax(0);
                entropy -= (p * p.log()).sum().item<double>();
                if (logits[t - 1].argmax().item<long>() == d.InputIds[t]) correct++;
            }
        }
        var method = chunked ? new SftMethod(0, 96 * 4 * 4) : new SftMethod();
        var output = method.Loss(model, data);
        Assert.Equal(entropy, output.MetricSums["entropy"], 1e-3);
        Assert.Equal(correct, output.MetricSums["mean_token_accuracy"]);
        Assert.True(entropy / method.CountItems(data) is > 3 and < 4.6); // a near-uniform tiny model over 96 ids: close to ln 96
        Assert.True(correct > 0, "no trained token is the argmax: the accuracy check would be trivial");
    }

    [Fact]
    public void ChunkedStatsAreThoseOfTheFullLogits()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(12);
        var hidden = randn(11, 16, generator: g);
        var weight = randn(40, 16, generator: g);
        var targets = randint(0, 40, [11], generator: g);
        var logits = hidden.matmul(weight.t());
        targets[3] = logits[3].argmax(); // at least one right
        var stats = new ChunkedTokenLogProbs.Stats { RecordEntropy = true };
        var logps = ChunkedTokenLogProbs.Apply(hidden, weight, targets, 4, stats); // chunks of 4, 4 and 3 rows
        var lp = logits.to(ScalarType.Float64).log_softmax(1);
        var entropy = (lp.exp() * lp).sum(1).neg().data<double>().ToArray();
        var correct = logits.argmax(1).eq(targets).data<bool>().ToArray();
        var mean = logits.mean([1]).data<float>().ToArray();
        var expectedLogps = lp.gather(1, targets.unsqueeze(1)).squeeze(1).data<double>().ToArray();
        for (int i = 0; i < 11; i++)
        {
            Assert.Equal(entropy[i], stats.Entropy[i], 1e-4);
            Assert.Equal(mean[i], stats.MeanLogits[i], 1e-5);
            Assert.Equal(expectedLogps[i], logps[i].item<float>(), 1e-4);
        }
        Assert.Equal(correct, stats.Correct);
        Assert.True(stats.Correct[3]);
        var plain = new ChunkedTokenLogProbs.Stats();
        ChunkedTokenLogProbs.Apply(hidden, weight, targets, 4, plain);
        Assert.Empty(plain.Entropy); // not asked: not computed
    }

    [Fact]
    public void ChunkedLossDoesNotLeakTensors()
    {
        var data = SyntheticData.PromptAnswers(8, seed: 10);
        using var model = Tiny(10);
        var method = new SftMethod(0, 96 * 4 * 7);
        var options = new SftOptions { BatchSize = 4, MaxSteps = 2, SaveSteps = 0 };
        new Trainer<TokenizedSequence>(model, method, data, null, options, TestModels.TempDir(), null).Train(TextWriter.Null);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        new Trainer<TokenizedSequence>(model, method, data, null, options with { MaxSteps = 30 }, TestModels.TempDir(), null).Train(TextWriter.Null);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void MaskedPromptTokensGetNoGradient()
    {
        var data = SyntheticData.PromptAnswers(4, seed: 8);
        using var model = Tiny(8);
        // Only prompt tokens, none trained: the loss has no term at all, every gradient is zero.
        var promptsOnly = data.Select(d => new TokenizedSequence(d.InputIds, new bool[d.Length])).ToList();
        using (var scope = NewDisposeScope())
            new SftMethod().Loss(model, promptsOnly).LossSum.backward();
        foreach (var (name, p) in model.named_parameters())
            Assert.True(p.grad is null || p.grad.abs().max().item<float>() == 0f, name);
        // Trained completions: the same prompts now reach the gradient only as context.
        model.zero_grad();
        using (var scope = NewDisposeScope())
            new SftMethod().Loss(model, data).LossSum.backward();
        Assert.True(model.OutputWeight.grad!.abs().max().item<float>() > 0f);
    }

    [Fact]
    public void PackingAndPaddingGiveTheSameLoss()
    {
        var data = SyntheticData.PromptAnswers(12, seed: 3);
        using var model = Tiny(3);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var method = new SftMethod();
        var packed = SequencePacking.BestFitDecreasing(data, maxLength: 24);
        Assert.True(packed.Count < data.Count);
        Assert.Equal(data.Sum(d => d.Length), packed.Sum(p => p.Length));
        Assert.All(packed, p => Assert.True(p.Length <= 24));
        Assert.Equal(method.CountItems(data), method.CountItems(packed));
        double padded = method.Loss(model, data).LossSum.item<float>() / method.CountItems(data);
        double pack = method.Loss(model, packed).LossSum.item<float>() / method.CountItems(packed);
        Assert.Equal(padded, pack, 1e-5);
    }

    [Fact]
    public void BestFitDecreasingFillsTheFullestRowThatFits()
    {
        TokenizedSequence Seq(int n) => new(Enumerable.Repeat(5, n).ToArray(), Enumerable.Repeat(true, n).ToArray());
        var rows = SequencePacking.BestFitDecreasing([Seq(6), Seq(5), Seq(4), Seq(3), Seq(2)], maxLength: 10);
        // 6 -> row A (4 left); 5 -> row B (5 left); 4 -> A (best fit, 0 left); 3 -> B (2 left); 2 -> B (0 left)
        Assert.Equal([10, 10], rows.Select(r => r.Length));
        Assert.Equal([0, 1, 2, 3, 4, 5, 0, 1, 2, 3], rows[0].PositionIds!);
        Assert.False(rows[0].Trained[6]); // a packed sequence's first token has no context: not a target
        var truncated = SequencePacking.BestFitDecreasing([Seq(15)], maxLength: 10);
        Assert.Equal(10, truncated.Single().Length);
    }

    [Fact]
    public void AccumulationNormalisesByTheWholeStep()
    {
        // 2 micro-batches of 2 equal 1 micro-batch of 4: the loss is divided by the step's trained tokens.
        var data = SyntheticData.PromptAnswers(8, seed: 4);
        var common = new SftOptions { LearningRate = 1e-3, Epochs = 2, LoggingSteps = 1, SaveSteps = 0, MaxGradNorm = 0 };
        using var a = Tiny(4);
        using var b = Tiny(4);
        var dirA = TestModels.TempDir();
        var dirB = TestModels.TempDir();
        new Trainer<TokenizedSequence>(a, new SftMethod(), data, null, common with { BatchSize = 4 }, dirA, null).Train(TextWriter.Null);
        new Trainer<TokenizedSequence>(b, new SftMethod(), data, null, common with { BatchSize = 2, GradientAccumulationSteps = 2 }, dirB, null).Train(TextWriter.Null);
        var la = Metrics(dirA);
        var lb = Metrics(dirB);
        Assert.Equal(la.Count, lb.Count);
        for (int i = 0; i < la.Count; i++)
        {
            Assert.Equal(la[i]["loss"]!.GetValue<double>(), lb[i]["loss"]!.GetValue<double>(), 1e-5);
            Assert.Equal(la[i]["grad_norm"]!.GetValue<double>(), lb[i]["grad_norm"]!.GetValue<double>(), 1e-4);
        }
    }

    /// <summary>SFT with step metrics: "even" is the step on even steps and NaN on odd ones; "never" is always NaN.</summary>
    sealed class WithStepMetrics : TrainingMethod<TokenizedSequence>
    {
        readonly SftMethod sft = new();
        public override long CountItems(IReadOnlyList<TokenizedSequence> units) => sft.CountItems(units);
        public override long CountTokens(IReadOnlyList<TokenizedSequence> units) => sft.CountTokens(units);
        public override MicroBatchLoss Loss(CausalLM model, IReadOnlyList<TokenizedSequence> units) => sft.Loss(model, units);
        public override IReadOnlyDictionary<string, double> StepMetrics(int step) =>
            new Dictionary<string, double> { ["even"] = step % 2 == 0 ? step : double.NaN, ["never"] = double.NaN };
    }

    [Fact]
    public void StepMetricsAreAveragedOverTheLoggedStepsWithoutTheirNaNs()
    {
        var data = SyntheticData.PromptAnswers(8, seed: 12);
        using var model = Tiny(12);
        var dir = TestModels.TempDir();
        new Trainer<TokenizedSequence>(model, new WithStepMetrics(), data, null, new SftOptions { BatchSize = 2, MaxSteps = 6, LoggingSteps = 3, SaveSteps = 0 }, dir, null)
            .Train(TextWriter.Null);
        var lines = Metrics(dir);
        Assert.Equal([3, 6], lines.Select(l => l["step"]!.GetValue<int>()));
        Assert.Equal((0 + 2) / 2.0, lines[0]["even"]!.GetValue<double>());      // steps 0, 1, 2: NaN at 1 left out (TRL filters NaN)
        Assert.Equal(4.0, lines[1]["even"]!.GetValue<double>());                // steps 3, 4, 5
        Assert.All(lines, l => Assert.True(l.ContainsKey("never") && l["never"] is null)); // no valid value: null, as TRL's None
    }

    [Fact]
    public void ResumedRunEqualsUninterruptedRun()
    {
        var data = SyntheticData.PromptAnswers(12, seed: 5);
        var options = new SftOptions { LearningRate = 5e-3, BatchSize = 3, GradientAccumulationSteps = 2, Epochs = 4, LoggingSteps = 1, SaveSteps = 3, SaveTotalLimit = 2, WarmupSteps = 2, WeightDecay = 0.01 };
        var full = TestModels.TempDir();
        using (var model = Tiny(5))
            new Trainer<TokenizedSequence>(model, new SftMethod(), data, null, options, full, null).Train(TextWriter.Null);
        Assert.Equal([3, 6], Trainer<TokenizedSequence>.Checkpoints(full).Select(c => c.Step)); // 8 steps: the last 2 checkpoints kept, 8 is the final model

        // A second run from the same start, resumed from the checkpoint at step 6 of the first.
        var resumed = TestModels.TempDir();
        CopyDirectory(Path.Combine(full, "checkpoint-6"), Path.Combine(resumed, "checkpoint-6"));
        File.WriteAllLines(Path.Combine(resumed, RunLog.MetricsFile), File.ReadAllLines(Path.Combine(full, RunLog.MetricsFile)).Take(6));
        using (var model = Tiny(99)) // different initial weights: all state must come from the checkpoint
            new Trainer<TokenizedSequence>(model, new SftMethod(), data, null, options, resumed, null)
                .Train(TextWriter.Null, resumeFrom: Path.Combine(resumed, "checkpoint-6"));
        var a = Metrics(full);
        var b = Metrics(resumed);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
            foreach (var key in new[] { "step", "loss", "learning_rate", "grad_norm", "epoch", "num_tokens" })
                Assert.Equal(a[i][key]!.GetValue<double>(), b[i][key]!.GetValue<double>(), 1e-6);
        using var finalA = HfCheckpoint.Load(full);
        using var finalB = HfCheckpoint.Load(resumed);
        foreach (var ((n, p), (_, q)) in finalA.named_parameters().Zip(finalB.named_parameters()))
            Assert.True(p.allclose(q, rtol: 0, atol: 1e-6), n);
    }

    [Fact]
    public void CancellationWritesACheckpointAndStops()
    {
        var data = SyntheticData.PromptAnswers(8, seed: 6);
        var dir = TestModels.TempDir();
        using var model = Tiny(6);
        using var cancelled = new CancellationTokenSource();
        // Ctrl-C during step 1 (here: when its progress line is printed).
        var console = new CancelOnLine(cancelled, "step 1/");
        var result = new Trainer<TokenizedSequence>(model, new SftMethod(), data, null, new SftOptions { BatchSize = 4, Epochs = 3, SaveSteps = 0, LoggingSteps = 1 }, dir, null)
            .Train(console, stop: cancelled.Token);
        Assert.True(result.Interrupted);
        Assert.Equal(1, result.Steps);
        Assert.Equal([1], Trainer<TokenizedSequence>.Checkpoints(dir).Select(c => c.Step));
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
        // Cancelled before training starts (while loading): no step, nothing written.
        var before = TestModels.TempDir();
        result = new Trainer<TokenizedSequence>(model, new SftMethod(), data, null, new SftOptions { BatchSize = 4, Epochs = 3, SaveSteps = 0 }, before, null)
            .Train(TextWriter.Null, stop: cancelled.Token);
        Assert.True(result.Interrupted);
        Assert.Equal(0, result.Steps);
        Assert.Empty(Directory.GetFileSystemEntries(before));
    }

    sealed class CancelOnLine(CancellationTokenSource cancel, string trigger) : StringWriter
    {
        public override void WriteLine(string? value)
        {
            base.WriteLine(value);
            if (value?.Contains(trigger) == true) cancel.Cancel();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LiveTensorsDoNotGrowOverFiftySteps(bool gradientCheckpointing)
    {
        var data = SyntheticData.PromptAnswers(8, seed: 7);
        using var model = Tiny(7);
        var options = new SftOptions { BatchSize = 4, MaxSteps = 50, LoggingSteps = 10, SaveSteps = 0, GradientCheckpointing = gradientCheckpointing };
        var dir = TestModels.TempDir();
        // One short run allocates what persists (gradients); a 50-step run must then leave the count where it was.
        new Trainer<TokenizedSequence>(model, new SftMethod(), data, null, options with { MaxSteps = 2 }, dir, null).Train(TextWriter.Null);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        new Trainer<TokenizedSequence>(model, new SftMethod(), data, null, options, TestModels.TempDir(), null).Train(TextWriter.Null);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    /// <summary>
    /// SFT plus a module the method owns beside the model: a small linear head whose parameters
    /// get the gradient <paramref name="c"/> in every element (the loss gains c · items · sum of
    /// them, and the loop divides by the step's items).
    /// </summary>
    sealed class WithExtraModule(double c, long seed) : TrainingMethod<TokenizedSequence>
    {
        readonly SftMethod sft = new();
        public TorchSharp.Modules.Linear Head { get; } = NewHead(seed);

        static TorchSharp.Modules.Linear NewHead(long seed)
        {
            var head = nn.Linear(4, 3, hasBias: true);
            using var noGrad = no_grad();
            using var g = new Generator((ulong)seed);
            head.weight!.normal_(0, 1, g);
            head.bias!.normal_(0, 1, g);
            return head;
        }

        public override IReadOnlyList<(string Name, nn.Module Module)> ExtraModules => [("head", Head)];
        public override long CountItems(IReadOnlyList<TokenizedSequence> units) => sft.CountItems(units);
        public override long CountTokens(IReadOnlyList<TokenizedSequence> units) => sft.CountTokens(units);
        public override MicroBatchLoss Loss(CausalLM model, IReadOnlyList<TokenizedSequence> units)
        {
            var output = sft.Loss(model, units);
            var extra = (Head.weight!.sum() + Head.bias!.sum()) * (c * sft.CountItems(units));
            return output with { LossSum = output.LossSum + extra };
        }
    }

    [Fact]
    public void ExtraModulesAreClippedWithTheModelTrainedCheckpointedAndResumedExactly()
    {
        var data = SyntheticData.PromptAnswers(12, seed: 8);
        var options = new SftOptions { LearningRate = 5e-3, BatchSize = 3, GradientAccumulationSteps = 2, MaxSteps = 6, LoggingSteps = 1, SaveSteps = 3, WeightDecay = 0.1, MaxGradNorm = 0 };

        // The global gradient norm takes in the extra module: its 15 elements add 15 c^2 to the model's squared norm.
        var plain = TestModels.TempDir();
        using (var model = Tiny(8))
            new Trainer<TokenizedSequence>(model, new SftMethod(), data, null, options with { MaxSteps = 1 }, plain, null).Train(TextWriter.Null);
        var full = TestModels.TempDir();
        var uninterrupted = new WithExtraModule(0.5, seed: 1);
        using (var model = Tiny(8))
        {
            var trainer = new Trainer<TokenizedSequence>(model, uninterrupted, data, null, options, full, null);
            var output = new StringWriter();
            trainer.Train(output);
            Assert.Contains($"{model.parameters().Sum(p => p.numel()) + 15} trainable parameters", output.ToString());
        }
        double without = Metrics(plain)[0]["grad_norm"]!.GetValue<double>(), with = Metrics(full)[0]["grad_norm"]!.GetValue<double>();
        Assert.Equal(Math.Sqrt(without * without + 15 * 0.25), with, 1e-5);

        // checkpoint-STEP holds the extra module's weights and its AdamW moments.
        var checkpoint = Path.Combine(full, "checkpoint-3");
        using (var file = PostTrain.Checkpoints.SafeTensorsFile.Open(Path.Combine(checkpoint, Trainer<TokenizedSequence>.ExtraModulesFile)))
            Assert.Equal(["head.bias", "head.weight"], file.Tensors.Keys.Order());
        using (var file = PostTrain.Checkpoints.SafeTensorsFile.Open(Path.Combine(checkpoint, Trainer<TokenizedSequence>.OptimizerFile)))
            Assert.Contains("head.weight.exp_avg_sq", file.Tensors.Keys);

        // Resumed with a head and a model of other initial weights, the run ends where the uninterrupted one did.
        var resumed = TestModels.TempDir();
        CopyDirectory(checkpoint, Path.Combine(resumed, "checkpoint-3"));
        File.WriteAllLines(Path.Combine(resumed, RunLog.MetricsFile), File.ReadAllLines(Path.Combine(full, RunLog.MetricsFile)).Take(3));
        var again = new WithExtraModule(0.5, seed: 2);
        using (var model = Tiny(99))
            new Trainer<TokenizedSequence>(model, again, data, null, options, resumed, null).Train(TextWriter.Null, resumeFrom: Path.Combine(resumed, "checkpoint-3"));
        var a = Metrics(full);
        var b = Metrics(resumed);
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
            foreach (var key in new[] { "loss", "grad_norm", "learning_rate" })
                Assert.Equal(a[i][key]!.GetValue<double>(), b[i][key]!.GetValue<double>(), 1e-6);
        Assert.True(uninterrupted.Head.weight!.allclose(again.Head.weight!, rtol: 0, atol: 1e-6));
        Assert.True(uninterrupted.Head.bias!.allclose(again.Head.bias!, rtol: 0, atol: 1e-6));
        using var initial = new WithExtraModule(0.5, seed: 1).Head;
        Assert.False(initial.weight!.allclose(uninterrupted.Head.weight!, rtol: 0, atol: 1e-3)); // trained
    }

    static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }
}
