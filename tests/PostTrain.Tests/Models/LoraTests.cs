using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;
using PostTrain.Trainers;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Tests.Models;

public class LoraTests
{
    // A fresh tensor per use: a static one would belong to the dispose scope that first touched it.
    static Tensor Ids => TestModels.Ids([1, 5, 9, 13, 40, 7], [3, 8, 21, 2, 2, 60]);

    static CausalLM Base(Architecture arch = Architecture.Qwen2, long seed = 0) => TestModels.Random(TestModels.Config(arch), seed, std: 0.1);

    static Tensor Logits(CausalLM model)
    {
        using var noGrad = no_grad();
        using var ids = Ids;
        return model.Forward(ids);
    }

    /// <summary>Gives every adapter B random values, so the adapters change the outputs.</summary>
    static void Perturb(CausalLM model, long seed = 7)
    {
        var g = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (_, p) in model.Projections())
            if (p.Adapter is { } ab) ab.B.normal_(0, 0.05, g);
    }

    [Theory]
    [InlineData(Architecture.Qwen2)]
    [InlineData(Architecture.Qwen3)]
    [InlineData(Architecture.Llama)]
    public void FreshAdaptersLeaveTheOutputsEqualToTheBase(Architecture arch)
    {
        using var model = Base(arch);
        using var before = Logits(model);
        LoraAdapters.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = 0 }, seed: 1);
        using var after = Logits(model);
        Assert.Equal(0f, TestModels.MaxAbsDiff(before, after)); // B starts at zero
        // Every linear layer of every block has an adapter; A is random, B zero.
        var adapters = model.Projections().Where(p => p.Projection.Adapter is not null).ToList();
        Assert.Equal(7 * model.Config.NumHiddenLayers, adapters.Count);
        foreach (var (_, p) in adapters)
        {
            var (a, b) = p.Adapter!.Value;
            Assert.Equal([4L, p.InFeatures], a.shape);
            Assert.Equal([p.OutFeatures, 4L], b.shape);
            Assert.True(a.abs().max().item<float>() > 0);
            Assert.True(a.abs().max().item<float>() <= 1 / Math.Sqrt(p.InFeatures) + 1e-6);
            Assert.Equal(0f, b.abs().max().item<float>());
            Assert.Equal(2.0, p.Scaling);
        }
        // Only adapters train.
        Assert.All(model.named_parameters(), p => Assert.Equal(CausalLM.IsAdapterParameter(p.name), p.parameter.requires_grad));
    }

    [Fact]
    public void TargetsAndRsLoraScaling()
    {
        using var model = Base();
        LoraAdapters.Attach(model, new LoraConfig { R = 16, Alpha = 8, UseRsLora = true, TargetModules = LoraConfig.ParseTargets("q_proj, v_proj") }, seed: 1);
        var names = model.Projections().Where(p => p.Projection.Adapter is not null).Select(p => p.Name).ToList();
        Assert.Equal(["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"], names);
        Assert.All(model.Projections().Where(p => p.Projection.Adapter is not null), p => Assert.Equal(8 / 4.0, p.Projection.Scaling));
        Assert.Equal(LoraConfig.AllLinear, LoraConfig.ParseTargets("all-linear"));
        var e = Assert.Throws<InputError>(() => LoraConfig.ParseTargets("q_proj,lm_head"));
        Assert.Contains("--lora-targets: 'lm_head'", e.Message);
    }

    [Fact]
    public void MergedLogitsEqualBasePlusAdapter()
    {
        using var model = Base(Architecture.Llama);
        LoraAdapters.Attach(model, new LoraConfig { R = 4, Alpha = 16, Dropout = 0.3 }, seed: 3);
        Perturb(model);
        model.eval(); // dropout off, as in inference
        using var withAdapter = Logits(model);
        using var baseOnly = Base(Architecture.Llama);
        using var baseLogits = Logits(baseOnly);
        Assert.True(TestModels.MaxAbsDiff(withAdapter, baseLogits) > 1e-2); // the adapter matters
        using (LoraAdapters.Disabled(model))
        using (var off = Logits(model))
            Assert.Equal(0f, TestModels.MaxAbsDiff(off, baseLogits));
        LoraAdapters.Merge(model);
        Assert.Null(model.Lora);
        Assert.DoesNotContain(model.named_parameters(), p => CausalLM.IsAdapterParameter(p.name));
        using var merged = Logits(model);
        Assert.True(TestModels.MaxAbsDiff(withAdapter, merged) < 1e-5, $"max diff {TestModels.MaxAbsDiff(withAdapter, merged)}");
    }

    [Fact]
    public void SavedAsPeftSavesAndLoadedBack()
    {
        var dir = TestModels.TempDir();
        using var model = Base();
        LoraAdapters.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = 0.1, TargetModules = ["q_proj", "v_proj", "down_proj"], BaseModel = "/models/base" }, seed: 1);
        Perturb(model);
        model.eval();
        using var expected = Logits(model);
        PeftAdapter.WriteInto(model, dir);

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, PeftAdapter.ConfigFile)))!.AsObject();
        Assert.Equal(["alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode", "init_lora_weights",
            "layer_replication", "layers_pattern", "layers_to_transform", "loftq_config", "lora_alpha", "lora_bias", "lora_dropout", "modules_to_save",
            "peft_type", "r", "rank_pattern", "revision", "target_modules", "task_type", "use_dora", "use_rslora"], config.Select(kv => kv.Key));
        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal(4, config["r"]!.GetValue<int>());
        Assert.Equal(8, config["lora_alpha"]!.GetValue<int>());
        Assert.Equal("/models/base", config["base_model_name_or_path"]!.GetValue<string>());
        Assert.Equal(["down_proj", "q_proj", "v_proj"], config["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal("CAUSAL_LM", config["task_type"]!.GetValue<string>());

        using (var file = SafeTensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFile)))
        {
            Assert.Equal(12, file.Tensors.Count);
            var a = file.Tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"];
            Assert.Equal([4L, 32], a.Shape);
            Assert.Equal("F32", a.DType);
            Assert.Equal([32L, 4], file.Tensors["base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"].Shape);
            Assert.All(file.Tensors.Keys, k => Assert.Matches(@"^base_model\.model\.model\.layers\.\d\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.weight$", k));
        }

        using var fresh = Base();
        var loaded = PeftAdapter.Load(fresh, dir);
        fresh.eval();
        Assert.Equal(new LoraConfig { R = 4, Alpha = 8, Dropout = 0.1, TargetModules = loaded.TargetModules, BaseModel = "/models/base" }, loaded);
        using var actual = Logits(fresh);
        Assert.Equal(0f, TestModels.MaxAbsDiff(expected, actual));
    }

    [Fact]
    public void AdaptersThatDoNotFitTheBaseAreClearErrors()
    {
        var dir = TestModels.TempDir();
        using (var other = TestModels.Random(ModelConfig.Create(Architecture.Qwen2, vocabSize: 96, hiddenSize: 48, intermediateSize: 48, layers: 2,
                   heads: 4, kvHeads: 2, headDim: 12, maxPositions: 256, ropeTheta: 1e6, ropeScaling: null, tieWordEmbeddings: false, bosTokenId: 1, eosTokenIds: [2])))
        {
            LoraAdapters.Attach(other, new LoraConfig { R = 4 }, seed: 1);
            PeftAdapter.WriteInto(other, dir);
        }
        using (var model = Base())
        {
            var e = Assert.Throws<InputError>(() => PeftAdapter.Load(model, dir));
            Assert.Contains("adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' has shape [4, 48]", e.Message);
        }

        // The config's base model is a llama directory; the base given is qwen2.
        var llamaDir = Path.Combine(dir, "llama-base");
        using (var llama = Base(Architecture.Llama)) HfCheckpoint.Save(llama, llamaDir);
        var configPath = Path.Combine(dir, PeftAdapter.ConfigFile);
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["base_model_name_or_path"] = llamaDir;
        File.WriteAllText(configPath, config.ToJsonString());
        using (var model = Base())
        {
            var e = Assert.Throws<InputError>(() => PeftAdapter.Load(model, dir));
            Assert.Contains("base_model_name_or_path: the adapter was made for a llama model", e.Message);
        }

        foreach (var (field, value, message) in new (string, JsonNode, string)[]
                 {
                     ("peft_type", "IA3", "peft_type: 'IA3' is not supported"),
                     ("use_dora", true, "use_dora: DoRA adapters are not supported"),
                     ("modules_to_save", new JsonArray("lm_head"), "modules_to_save: not supported"),
                     ("r", "four", "r: expected int32"),
                 })
        {
            var bad = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
            bad["base_model_name_or_path"] = null;
            bad[field] = value;
            var badDir = Path.Combine(dir, "bad-" + field);
            Directory.CreateDirectory(badDir);
            File.WriteAllText(Path.Combine(badDir, PeftAdapter.ConfigFile), bad.ToJsonString());
            var e = Assert.Throws<InputError>(() => PeftAdapter.ReadConfig(badDir));
            Assert.Contains(message, e.Message);
            Assert.Contains(PeftAdapter.ConfigFile, e.Message);
        }
    }

    [Fact]
    public void TrainingChangesOnlyTheAdaptersAndTheReferenceIsTheBase()
    {
        using var model = Base();
        var baseWeights = model.BaseParameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        LoraAdapters.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = 0.1 }, seed: 1);
        var startAdapters = model.named_parameters().Where(p => CausalLM.IsAdapterParameter(p.name)).ToDictionary(p => p.name, p => p.parameter.detach().clone());
        var data = Training.SyntheticData.PromptAnswers(16);
        var output = TestModels.TempDir();
        var options = new TrainingOptions { LearningRate = 0.01, BatchSize = 4, MaxSteps = 6, SaveSteps = 0, LoggingSteps = 2 };
        var result = new Trainer<TokenizedSequence>(model, new SftMethod(), data, data, options, output, null).Train(TextWriter.Null);
        Assert.True(result.FinalEvalLoss < 4.6);

        foreach (var (name, p) in model.BaseParameters())
            Assert.Equal(0f, TestModels.MaxAbsDiff(baseWeights[name], p));
        Assert.Contains(model.named_parameters(), p => CausalLM.IsAdapterParameter(p.name) && p.name.Contains("lora_B") && p.parameter.abs().max().item<float>() > 0);
        Assert.All(startAdapters, kv => Assert.True(TestModels.MaxAbsDiff(kv.Value, model.named_parameters().Single(p => p.name == kv.Key).parameter) > 0, kv.Key));
        // The optimizer kept state for adapters only; the output is a PEFT adapter, not a full model.
        using (var state = SafeTensorsFile.Open(Path.Combine(output, PeftAdapter.WeightsFile)))
            Assert.Equal(startAdapters.Count, state.Tensors.Count);
        Assert.False(File.Exists(Path.Combine(output, HfCheckpoint.SingleFile)));

        // The reference of DPO/GRPO: the policy with adapters off, which is the untouched base.
        using var reference = ReferenceModel.AdaptersOff();
        using var baseModel = Base();
        using var expected = Logits(baseModel);
        model.train();
        using var refLogits = reference.Run(model, m => m.Forward(Ids));
        Assert.Equal(0f, TestModels.MaxAbsDiff(expected, refLogits));
        Assert.True(model.training);
        using var policyLogits = Logits(model);
        Assert.True(TestModels.MaxAbsDiff(policyLogits, expected) > 1e-3); // the adapters are back on
    }

    [Fact]
    public void GradientCheckpointingGivesTheSameAdapterGradientsWithDropout()
    {
        Dictionary<string, Tensor> Grads(bool checkpointing)
        {
            using var model = Base(Architecture.Qwen3);
            LoraAdapters.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = 0.2 }, seed: 1);
            Perturb(model);
            model.train();
            model.GradientCheckpointing = checkpointing;
            model.SeedDropout(11);
            using (var scope = NewDisposeScope())
                model.Forward(Ids).square().mean().backward();
            return model.named_parameters().Where(p => p.parameter.requires_grad)
                .ToDictionary(p => p.name, p => p.parameter.grad!.clone());
        }
        var plain = Grads(false);
        var checkpointed = Grads(true);
        Assert.Equal(plain.Keys, checkpointed.Keys);
        Assert.All(plain, kv => Assert.True(TestModels.MaxAbsDiff(kv.Value, checkpointed[kv.Key]) < 1e-6, kv.Key));
        Assert.Contains(plain.Values, g => g.abs().max().item<float>() > 0);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void BfloatBaseWithFloatAdapters()
    {
        var dir = TestModels.TempDir();
        using (var source = Base()) HfCheckpoint.Save(source, dir);
        using var model = HfCheckpoint.Load(dir, ScalarType.BFloat16);
        LoraAdapters.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = 0 }, seed: 1);
        var (a, b) = model.Projections().First().Projection.Adapter!.Value;
        Assert.Equal(ScalarType.Float32, a.dtype);
        Assert.Equal(ScalarType.BFloat16, model.Projections().First().Projection.Weight.dtype);
        var data = Training.SyntheticData.PromptAnswers(8);
        var method = new SftMethod();
        double first = 0, last = 0;
        using var optimizer = new AdamW(model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)), 0.9, 0.999, 1e-8, 0);
        for (int step = 0; step < 8; step++)
        {
            using var scope = NewDisposeScope();
            var loss = method.Loss(model, data);
            double value = loss.LossSum.item<float>() / method.CountItems(data);
            if (step == 0) first = value;
            last = value;
            (loss.LossSum / method.CountItems(data)).backward();
            optimizer.Update(0.02);
            optimizer.ZeroGrad();
        }
        Assert.True(last < first - 0.1, $"loss {first} -> {last}");
        Assert.Equal(ScalarType.Float32, b.dtype);
    }

    [Fact]
    public void WithDropoutDisabledTrainingModeForwardsAgree()
    {
        using var model = Base(Architecture.Llama);
        LoraAdapters.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = 0.5 }, seed: 1);
        Perturb(model);
        model.eval();
        using var evalLogits = Logits(model);
        model.train();
        model.SeedDropout(1);
        using var first = Logits(model);
        model.SeedDropout(2);
        using var second = Logits(model);
        Assert.True(TestModels.MaxAbsDiff(first, second) > 1e-3); // dropout 0.5 on the adapters' input

        model.DisableDropout();
        Assert.All(model.Projections(), p => Assert.Equal(0.0, p.Projection.Dropout));
        Assert.Equal(0.5, model.Lora!.Dropout); // the adapter's config (saved as lora_dropout) is unchanged, as in PEFT
        model.SeedDropout(1);
        using var third = Logits(model);
        model.SeedDropout(2);
        using var fourth = Logits(model);
        Assert.True(model.training);
        Assert.Equal(0f, TestModels.MaxAbsDiff(third, fourth));
        Assert.Equal(0f, TestModels.MaxAbsDiff(third, evalLogits));
    }

    [Fact]
    public void ContinuingAnAdapterTheReferenceIsTheAdapterAsLoaded()
    {
        var root = TestModels.TempDir();
        var baseDir = Path.Combine(root, "base");
        var adapterDir = Path.Combine(root, "adapter");
        var laterDir = Path.Combine(root, "later");
        Directory.CreateDirectory(adapterDir);
        Directory.CreateDirectory(laterDir);
        using (var source = Base()) HfCheckpoint.Save(source, baseDir);
        using (var tuned = HfCheckpoint.Load(baseDir))
        {
            LoraAdapters.Attach(tuned, new LoraConfig { R = 4, Alpha = 8, Dropout = 0.3, BaseModel = baseDir }, seed: 1);
            Perturb(tuned, seed: 7);
            PeftAdapter.WriteInto(tuned, adapterDir);
            Perturb(tuned, seed: 8);
            PeftAdapter.WriteInto(tuned, laterDir); // as a checkpoint of the continued run would be
        }
        // Base + adapter, loaded on their own: what the reference must compute.
        using var independent = HfCheckpoint.Load(baseDir);
        PeftAdapter.Load(independent, adapterDir);
        independent.eval();
        using var expected = Logits(independent);
        using var bare = HfCheckpoint.Load(baseDir);
        using var baseLogits = Logits(bare);
        Assert.True(TestModels.MaxAbsDiff(expected, baseLogits) > 1e-3);

        var options = new TrainingOptions { Model = baseDir, Adapter = adapterDir };
        using var policy = PolicyModel.Load(options);
        using var reference = PolicyModel.Reference(options, policy, referenceDir: null);
        Assert.True(reference.IsFrozenAdapter);
        Assert.False(reference.IsPolicyBase);
        // The copy is not a parameter: nothing more to train, save or optimise.
        Assert.Equal(2 * 7 * policy.Config.NumHiddenLayers, policy.named_parameters().Count(p => p.parameter.requires_grad));

        policy.train();
        using (var refLogits = reference.Run(policy, m => m.Forward(Ids)))
            Assert.Equal(0f, TestModels.MaxAbsDiff(expected, refLogits));
        // Training (or resuming from a checkpoint) moves the policy's adapter; the reference stays the adapter as loaded.
        PeftAdapter.LoadWeights(policy, laterDir);
        using (var refLogits = reference.Run(policy, m => m.Forward(Ids)))
            Assert.Equal(0f, TestModels.MaxAbsDiff(expected, refLogits));
        Assert.True(policy.training);
        policy.eval();
        using var policyLogits = Logits(policy);
        Assert.True(TestModels.MaxAbsDiff(policyLogits, expected) > 1e-3); // the trained adapter is back
        using var later = HfCheckpoint.Load(baseDir);
        PeftAdapter.Load(later, laterDir);
        later.eval();
        using var laterLogits = Logits(later);
        Assert.Equal(0f, TestModels.MaxAbsDiff(laterLogits, policyLogits));

        // A reference built after the policy moved still reads the adapter from --adapter.
        using (var late = PolicyModel.Reference(options, policy, referenceDir: null))
        using (var refLogits = late.Run(policy, m => m.Forward(Ids)))
            Assert.Equal(0f, TestModels.MaxAbsDiff(expected, refLogits));

        // Fresh adapters (--lora): the reference is the bare base, adapters off.
        var fresh = new TrainingOptions { Model = baseDir, Lora = true, LoraR = 4 };
        using var freshPolicy = PolicyModel.Load(fresh);
        using var freshReference = PolicyModel.Reference(fresh, freshPolicy, referenceDir: null);
        Assert.True(freshReference.IsPolicyBase);
        Perturb(freshPolicy);
        using (var refLogits = freshReference.Run(freshPolicy, m => m.Forward(Ids)))
            Assert.Equal(0f, TestModels.MaxAbsDiff(baseLogits, refLogits));
    }
}
