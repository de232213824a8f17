using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Training;

/// <summary>How a training run ended.</summary>
public sealed record TrainResult(int Steps, int TotalSteps, bool Interrupted, double? FinalLoss, double? FinalEvalLoss);

/// <summary>
/// The loop every trainer shares: shuffled micro-batches, gradient accumulation with the loss
/// normalised by the items of the whole step, gradient clipping, AdamW, the learning-rate
/// schedule, logging, evaluation, checkpoints every N steps (kept to the last K) and exact
/// resume. The data position is a function of the step (epoch order comes from the seed), so a
/// resumed run sees the same batches as an uninterrupted one.
/// </summary>
public sealed class Trainer<TUnit>
{
    public const string StateFile = "trainer_state.json";
    public const string OptimizerFile = "optimizer.safetensors";
    /// <summary>The trained parameters of the method's extra modules in a checkpoint, as NAME.PARAM.</summary>
    public const string ExtraModulesFile = "extra_modules.safetensors";

    readonly CausalLM model;
    readonly TrainingMethod<TUnit> method;
    readonly IReadOnlyList<TUnit> train;
    readonly IReadOnlyList<TUnit>? eval;
    readonly TrainingOptions options;
    readonly string outputDir;
    readonly string? filesFrom;

    /// <param name="filesFrom">The source model directory: its tokenizer files travel with every save.</param>
    public Trainer(CausalLM model, TrainingMethod<TUnit> method, IReadOnlyList<TUnit> train, IReadOnlyList<TUnit>? eval,
        TrainingOptions options, string outputDir, string? filesFrom)
    {
        options.Validate();
        if (train.Count == 0) throw new InputError("the training set is empty");
        this.model = model;
        this.method = method;
        this.train = train;
        this.eval = eval is { Count: > 0 } ? eval : null;
        this.options = options;
        this.outputDir = Path.GetFullPath(outputDir);
        this.filesFrom = filesFrom;
        var topLevel = model.named_children().Select(c => c.name).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, _) in method.ExtraModules)
            if (!topLevel.Add(name))
                throw new ArgumentException($"extra module '{name}': the name is taken (by the model or another extra module)", nameof(method));
        model.GradientCheckpointing = options.GradientCheckpointing;
        if (options.DropoutDisabled) model.DisableDropout(); // as TRL's trainers do in __init__ with disable_dropout
    }

    /// <summary>
    /// Evaluations beside the evaluation loss, run on the model (in eval mode, adapters active)
    /// every --eval-steps and at the end: each returns metrics to log (e.g. eval/gsm8k/exact_match,strict-match).
    /// </summary>
    public List<Func<CausalLM, IReadOnlyDictionary<string, double>>> Evaluations { get; } = [];

    public int MicroBatchesPerEpoch => (train.Count + options.UnitsPerMicroBatch - 1) / options.UnitsPerMicroBatch;
    /// <summary>Distinct data batches per epoch (each trained on for the method's StepsPerBatch steps).</summary>
    int DataStepsPerEpoch => Math.Max(1, (MicroBatchesPerEpoch + options.GradientAccumulationSteps - 1) / options.GradientAccumulationSteps);
    public int StepsPerEpoch => DataStepsPerEpoch * method.StepsPerBatch;
    public int TotalSteps => options.MaxSteps > 0 ? options.MaxSteps : (int)Math.Ceiling(options.Epochs * StepsPerEpoch);

    /// <summary>Units of the micro-batches of a step, in the epoch's seeded order.</summary>
    IReadOnlyList<TUnit>[] MicroBatches(int step, Dictionary<int, int[]> orders)
    {
        int dataStep = step / method.StepsPerBatch;
        int epoch = dataStep / DataStepsPerEpoch, inEpoch = dataStep % DataStepsPerEpoch;
        if (!orders.TryGetValue(epoch, out var order))
        {
            orders.Clear();
            orders[epoch] = order = Shuffle(train.Count, options.Seed + epoch);
        }
        int first = inEpoch * options.GradientAccumulationSteps;
        int last = Math.Min(first + options.GradientAccumulationSteps, MicroBatchesPerEpoch);
        var result = new IReadOnlyList<TUnit>[last - first];
        for (int m = first; m < last; m++)
        {
            int start = m * options.UnitsPerMicroBatch, count = Math.Min(options.UnitsPerMicroBatch, train.Count - start);
            result[m - first] = Enumerable.Range(start, count).Select(i => train[order[i]]).ToArray();
        }
        return result;
    }

    static int[] Shuffle(int n, long seed)
    {
        var order = Enumerable.Range(0, n).ToArray();
        var random = new Random(unchecked((int)(seed ^ (seed >> 32))));
        for (int i = n - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    /// <summary>Runs (or resumes) training. Cancelling the token writes a checkpoint after the current step.</summary>
    public TrainResult Train(TextWriter console, string? resumeFrom = null, CancellationToken stop = default)
    {
        if (stop.IsCancellationRequested)
        {
            // Interrupted while the model and data were loading: nothing to save.
            console.WriteLine("Interrupted before the first step: nothing was trained" + (resumeFrom is null ? "" : $"; {resumeFrom} is unchanged"));
            return new TrainResult(0, TotalSteps, true, null, null);
        }
        Directory.CreateDirectory(outputDir);
        var parameters = model.named_parameters().Concat(ExtraParameters()).Where(p => p.parameter.requires_grad).ToList();
        using var optimizer = new AdamW(parameters.Select(p => (p.name, p.parameter)), options.AdamBeta1,
            options.AdamBeta2, options.AdamEpsilon, options.WeightDecay);
        int total = TotalSteps;
        var schedule = LearningRateSchedule.For(options, total);
        var window = new LogWindow();
        int start = 0;
        long tokensSeen = 0;
        if (resumeFrom is not null)
        {
            (start, window, tokensSeen) = Resume(resumeFrom, optimizer);
            console.WriteLine($"Resumed from {resumeFrom} at step {start}/{total}");
        }
        var log = new RunLog(outputDir, console, keepUpToStep: resumeFrom is null ? null : start);
        method.Log = console;
        console.WriteLine($"Training {train.Count} units: {MicroBatchesPerEpoch} micro-batches of {options.UnitsPerMicroBatch} per epoch, " +
                          $"{StepsPerEpoch} steps per epoch, {total} steps, {CountTrainable()} trainable parameters");

        var orders = new Dictionary<int, int[]>();
        var clock = Stopwatch.StartNew();
        double? lastLoss = null, lastEval = null;
        int step = start;
        bool interrupted = false;
        SetTraining(true);
        for (; step < total; step++)
        {
            // Dropout (LoRA's) draws from the model's generator: seeding it per step makes a
            // resumed run draw the same masks as an uninterrupted one.
            model.SeedDropout(options.Seed * 1_000_003 + step);
            var batches = MicroBatches(step, orders);
            method.PrepareStep(model, step, batches);
            long items = batches.Sum(method.CountItems);
            double lossSum = 0;
            var metricSums = new Dictionary<string, double>();
            foreach (var units in batches)
            {
                using var scope = NewDisposeScope();
                var output = method.Loss(model, units);
                if (items > 0) (output.LossSum / items).backward();
                lossSum += output.LossSum.item<float>();
                foreach (var (k, v) in output.MetricSums) metricSums[k] = metricSums.GetValueOrDefault(k) + v;
                long tokens = method.CountTokens(units);
                window.Tokens += tokens;
                tokensSeen += tokens;
            }
            double lr = schedule.At(step);
            double gradNorm;
            using (NewDisposeScope()) // gradient wrappers made while clipping and stepping
            {
                gradNorm = ClipGradients(optimizer.Parameters);
                optimizer.Update(lr);
                optimizer.ZeroGrad();
            }

            window.Add(lossSum, items, metricSums, method.StepMetrics(step));
            lastLoss = items > 0 ? lossSum / items : double.NaN;
            int done = step + 1;
            double epoch = (double)done / StepsPerEpoch;
            if (done % options.LoggingSteps == 0 || done == total)
            {
                var metrics = window.Metrics();
                metrics["learning_rate"] = lr;
                metrics["grad_norm"] = gradNorm;
                metrics["tokens_per_second"] = window.Tokens / Math.Max(1e-9, clock.Elapsed.TotalSeconds - window.StartSeconds);
                metrics["num_tokens"] = tokensSeen;
                log.Write(done, epoch, metrics);
                console.WriteLine(Progress(done, total, epoch, metrics, clock.Elapsed, start));
                window = new LogWindow { StartSeconds = clock.Elapsed.TotalSeconds };
            }
            if ((eval is not null || Evaluations.Count > 0) && ((options.EvalSteps > 0 && done % options.EvalSteps == 0) || done == total))
            {
                var evalMetrics = eval is null ? [] : Evaluate();
                if (eval is not null) lastEval = evalMetrics["eval_loss"];
                foreach (var evaluation in Evaluations)
                {
                    SetTraining(false);
                    try
                    {
                        foreach (var (k, v) in evaluation(model)) evalMetrics[k] = v;
                    }
                    finally
                    {
                        SetTraining(true);
                    }
                }
                log.Write(done, epoch, evalMetrics);
                console.WriteLine($"  eval at step {done}: " + string.Join(", ", evalMetrics.Select(kv => $"{kv.Key} {RunLog.Format(kv.Value)}")));
            }
            bool stopping = stop.IsCancellationRequested && done < total;
            if ((options.SaveSteps > 0 && done % options.SaveSteps == 0 && done < total) || stopping)
                SaveCheckpoint(done, optimizer, window, tokensSeen);
            if (stopping)
            {
                console.WriteLine($"Interrupted: wrote {Path.Combine(outputDir, $"checkpoint-{done}")}; continue with --resume");
                interrupted = true;
                step = done;
                break;
            }
        }
        if (!interrupted)
        {
            SaveFinalModel();
            console.WriteLine($"Saved the final model to {outputDir}" +
                              (stop.IsCancellationRequested ? " (the interrupt came after the last step: the final save was completed)" : ""));
        }
        return new TrainResult(interrupted ? step : total, total, interrupted, lastLoss, lastEval);
    }

    long CountTrainable() => model.parameters().Concat(ExtraParameters().Select(p => p.parameter)).Where(p => p.requires_grad).Sum(p => p.numel());

    /// <summary>The method's extra modules' parameters, named NAME.PARAM.</summary>
    IEnumerable<(string name, TorchSharp.Modules.Parameter parameter)> ExtraParameters() =>
        method.ExtraModules.SelectMany(m => m.Module.named_parameters().Select(p => ($"{m.Name}.{p.name}", p.parameter)));

    /// <summary>Training or evaluation mode for the model and the method's extra modules.</summary>
    void SetTraining(bool training)
    {
        if (training) model.train();
        else model.eval();
        foreach (var (_, module) in method.ExtraModules)
        {
            if (training) module.train();
            else module.eval();
        }
    }

    double ClipGradients(IEnumerable<TorchSharp.Modules.Parameter> parameters)
    {
        var withGrad = parameters.Where(p => p.grad is not null).ToList();
        if (withGrad.Count == 0) return 0;
        if (options.MaxGradNorm > 0) return nn.utils.clip_grad_norm_(withGrad, options.MaxGradNorm);
        using var scope = NewDisposeScope();
        double sum = 0;
        foreach (var p in withGrad) sum += p.grad!.to(ScalarType.Float64).square().sum().item<double>();
        return Math.Sqrt(sum);
    }

    /// <summary>Loss and metrics over the evaluation set: sums over all its items, then divided.</summary>
    public Dictionary<string, double> Evaluate()
    {
        var units = eval ?? throw new InvalidOperationException("no evaluation data");
        SetTraining(false);
        double lossSum = 0;
        long items = 0;
        var sums = new Dictionary<string, double>();
        using (no_grad())
        {
            for (int i = 0; i < units.Count; i += options.UnitsPerMicroBatch)
            {
                using var scope = NewDisposeScope();
                var batch = units.Skip(i).Take(options.UnitsPerMicroBatch).ToArray();
                var output = method.Loss(model, batch);
                lossSum += output.LossSum.item<float>();
                items += method.CountItems(batch);
                foreach (var (k, v) in output.MetricSums) sums[k] = sums.GetValueOrDefault(k) + v;
            }
        }
        SetTraining(true);
        var metrics = new Dictionary<string, double> { ["eval_loss"] = items > 0 ? lossSum / items : double.NaN };
        foreach (var (k, v) in sums) metrics["eval_" + k] = items > 0 ? v / items : double.NaN;
        return metrics;
    }

    static string Progress(int done, int total, double epoch, Dictionary<string, double> m, TimeSpan elapsed, int start)
    {
        double fraction = (double)done / total;
        int filled = (int)Math.Round(fraction * 20);
        var eta = done > start ? TimeSpan.FromSeconds(elapsed.TotalSeconds / (done - start) * (total - done)) : TimeSpan.Zero;
        var extras = string.Join(" ", m.Where(kv => kv.Key is not ("loss" or "learning_rate" or "grad_norm" or "tokens_per_second" or "num_tokens"))
            .Select(kv => $"{kv.Key} {RunLog.Format(kv.Value)}"));
        return $"[{new string('#', filled)}{new string('.', 20 - filled)}] step {done}/{total} epoch {epoch:0.00} " +
               $"loss {RunLog.Format(m.GetValueOrDefault("loss", double.NaN))} lr {RunLog.Format(m["learning_rate"])} " +
               $"grad_norm {RunLog.Format(m["grad_norm"])} {m["tokens_per_second"]:0} tok/s ETA {eta:hh\\:mm\\:ss}" +
               (extras.Length > 0 ? " " + extras : "");
    }

    void SaveCheckpoint(int step, AdamW optimizer, LogWindow window, long tokensSeen)
    {
        var dir = Path.Combine(outputDir, $"checkpoint-{step}");
        AtomicDirectory.Write(dir, overwrite: true, temp =>
        {
            method.SaveModel(model, temp, filesFrom);
            var extra = ExtraParameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, (Tensor)p.parameter)).ToList();
            if (extra.Count > 0) SafeTensorsFile.Write(Path.Combine(temp, ExtraModulesFile), extra);
            optimizer.Save(Path.Combine(temp, OptimizerFile));
            var state = new JsonObject
            {
                ["global_step"] = step,
                ["total_steps"] = TotalSteps,
                ["epoch"] = (double)step / StepsPerEpoch,
                ["train_units"] = train.Count,
                ["batch_size"] = options.UnitsPerMicroBatch,
                ["gradient_accumulation_steps"] = options.GradientAccumulationSteps,
                ["seed"] = options.Seed,
                ["num_tokens"] = tokensSeen,
                ["log_window"] = window.ToJson(),
            };
            File.WriteAllText(Path.Combine(temp, StateFile), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        });
        if (options.SaveTotalLimit > 0)
            foreach (var old in Checkpoints(outputDir).SkipLast(options.SaveTotalLimit))
                Directory.Delete(old.Path, recursive: true);
    }

    /// <summary>checkpoint-STEP directories of a run, oldest first.</summary>
    public static IReadOnlyList<(int Step, string Path)> Checkpoints(string outputDir) =>
        !Directory.Exists(outputDir) ? []
        : Directory.GetDirectories(outputDir, "checkpoint-*")
            .Select(d => (Ok: int.TryParse(Path.GetFileName(d)["checkpoint-".Length..], out var s), Step: s, Path: d))
            .Where(x => x.Ok && File.Exists(Path.Combine(x.Path, StateFile)))
            .OrderBy(x => x.Step).Select(x => (x.Step, x.Path)).ToList();

    (int Step, LogWindow Window, long TokensSeen) Resume(string dir, AdamW optimizer)
    {
        var statePath = Path.Combine(dir, StateFile);
        if (!File.Exists(statePath)) throw new InputError($"{dir}: not a checkpoint (no {StateFile})");
        var state = JsonNode.Parse(File.ReadAllText(statePath))!.AsObject();
        void Same(string key, long expected, string what)
        {
            long saved = state[key]!.GetValue<long>();
            if (saved != expected)
                throw new InputError($"{statePath}: {key}: the checkpoint was made with {saved} {what}, this run has {expected}; resume needs the same data and batching");
        }
        Same("train_units", train.Count, "training units");
        Same("batch_size", options.UnitsPerMicroBatch, "as batch size");
        Same("gradient_accumulation_steps", options.GradientAccumulationSteps, "accumulation steps");
        Same("seed", options.Seed, "as seed");
        method.LoadModel(model, dir);
        LoadExtraModules(dir);
        optimizer.Load(Path.Combine(dir, OptimizerFile));
        return (state["global_step"]!.GetValue<int>(), LogWindow.FromJson(state["log_window"]!.AsObject()),
            state["num_tokens"]!.GetValue<long>());
    }

    /// <summary>Restores the trained parameters of the method's extra modules from a checkpoint's <see cref="ExtraModulesFile"/>.</summary>
    void LoadExtraModules(string dir)
    {
        var extra = ExtraParameters().Where(p => p.parameter.requires_grad).ToList();
        if (extra.Count == 0) return;
        var path = Path.Combine(dir, ExtraModulesFile);
        if (!File.Exists(path)) throw new InputError($"{dir}: no {ExtraModulesFile} (the weights of {string.Join(", ", method.ExtraModules.Select(m => m.Name))})");
        using var file = SafeTensorsFile.Open(path);
        using var noGrad = no_grad();
        foreach (var (name, parameter) in extra)
        {
            if (!file.Tensors.TryGetValue(name, out var info))
                throw new InputError($"{path}: missing tensor '{name}'");
            if (!info.Shape.SequenceEqual(parameter.shape) || SafeTensorsFile.ToScalarType(info.DType, path, name) != parameter.dtype)
                throw new InputError($"{path}: tensor '{name}' does not fit the parameter");
            file.CopyInto(info, parameter);
        }
    }

    /// <summary>The final model (or adapter) in OUTPUT itself, with the tokenizer files, as transformers' save_model.</summary>
    void SaveFinalModel()
    {
        var temp = Path.Combine(outputDir, $".final-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            method.SaveModel(model, temp, filesFrom);
            foreach (var stale in new[] { HfCheckpoint.SingleFile, HfCheckpoint.IndexFile, PeftAdapter.ConfigFile, PeftAdapter.WeightsFile }.Concat(
                         Directory.GetFiles(outputDir, "model-*-of-*.safetensors").Select(Path.GetFileName)))
                File.Delete(Path.Combine(outputDir, stale!));
            foreach (var file in Directory.GetFiles(temp))
                File.Move(file, Path.Combine(outputDir, Path.GetFileName(file)), overwrite: true);
            foreach (var dir in Directory.GetDirectories(temp)) // a method's own output beside the model (PPO's value_model)
            {
                var target = Path.Combine(outputDir, Path.GetFileName(dir));
                if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
                Directory.Move(dir, target);
            }
        }
        catch (IOException e) when (e.Message.Contains(temp, StringComparison.Ordinal))
        {
            throw AtomicDirectory.Renamed(e, temp, outputDir);
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>
    /// Per-step values since the last log line, averaged over steps when logged (as
    /// transformers averages the step losses); saved in checkpoints so a resumed run logs the
    /// same averages as an uninterrupted one. A metric's NaN steps are left out of its average
    /// (NaN when every step was NaN), as TRL's trainers filter NaN before averaging.
    /// </summary>
    sealed class LogWindow
    {
        public int Steps;
        public double LossSum;
        public long Tokens;
        public double StartSeconds;
        public Dictionary<string, double> MetricSums = new();
        /// <summary>Per metric: the steps whose value was not NaN.</summary>
        public Dictionary<string, int> MetricCounts = new();

        public void Add(double stepLossSum, long items, Dictionary<string, double> metricSums, IReadOnlyDictionary<string, double> stepMetrics)
        {
            Steps++;
            long n = Math.Max(1, items);
            LossSum += stepLossSum / n;
            foreach (var (k, v) in metricSums) AddMetric(k, v / n);
            foreach (var (k, v) in stepMetrics) AddMetric(k, v);
        }

        void AddMetric(string key, double value)
        {
            MetricSums.TryAdd(key, 0);
            MetricCounts.TryAdd(key, 0);
            if (double.IsNaN(value)) return;
            MetricSums[key] += value;
            MetricCounts[key]++;
        }

        public Dictionary<string, double> Metrics()
        {
            var m = new Dictionary<string, double> { ["loss"] = LossSum / Math.Max(1, Steps) };
            foreach (var (k, v) in MetricSums) m[k] = MetricCounts[k] > 0 ? v / MetricCounts[k] : double.NaN;
            return m;
        }

        public JsonObject ToJson() => new()
        {
            ["steps"] = Steps,
            ["loss_sum"] = LossSum.ToString("R", CultureInfo.InvariantCulture),
            ["metric_sums"] = new JsonObject(MetricSums.Select(kv =>
                new KeyValuePair<string, JsonNode?>(kv.Key, kv.Value.ToString("R", CultureInfo.InvariantCulture)))),
            ["metric_counts"] = new JsonObject(MetricCounts.Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, kv.Value))),
        };

        public static LogWindow FromJson(JsonObject o)
        {
            var window = new LogWindow
            {
                Steps = o["steps"]!.GetValue<int>(),
                LossSum = double.Parse(o["loss_sum"]!.GetValue<string>(), CultureInfo.InvariantCulture),
                MetricSums = o["metric_sums"]!.AsObject().ToDictionary(kv => kv.Key,
                    kv => double.Parse(kv.Value!.GetValue<string>(), CultureInfo.InvariantCulture)),
            };
            // Checkpoints written before metric_counts: every step counted.
            var counts = o["metric_counts"]?.AsObject();
            window.MetricCounts = window.MetricSums.Keys.ToDictionary(k => k, k => counts?[k]?.GetValue<int>() ?? window.Steps);
            return window;
        }
    }
}
