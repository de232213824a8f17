using System.CommandLine;
using PostTrain.Checkpoints;
using PostTrain.Models;
using PostTrain.Tokenization;
using static TorchSharp.torch;

namespace PostTrain.Cli.Commands;

/// <summary>
/// --model and --adapter of the verbs that run a model: a base model, optionally with a PEFT
/// LoRA adapter on top. --model may also name an adapter directory alone, whose
/// base_model_name_or_path is then the base (as AutoPeftModel loads one).
/// </summary>
public sealed class ModelArgs
{
    public readonly Option<string> Model;
    public readonly Option<string?> Adapter = new("--adapter") { Description = "A LoRA adapter directory (PEFT's adapter_config.json + adapter_model.safetensors) applied on top of --model" };

    public readonly Option<string> Dtype = new("--dtype")
    {
        Description = "dtype the model runs in: float32 (as transformers loads by default), bfloat16 (half the memory; decoding one sequence reads half the bytes per token) or float16; f32, bf16, f16 also accepted",
        DefaultValueFactory = _ => "float32",
    };

    public readonly Option<string[]> TemplateKwargs = new("--chat-template-kwargs")
    {
        Description = "Extra chat-template variables: KEY=JSON (repeatable) or a JSON object, e.g. enable_thinking=false for Qwen3",
    };

    public ModelArgs(string description) => Model = new Option<string>("--model") { Description = description, Required = true };

    public void AddTo(Command command)
    {
        command.Options.Add(Model);
        command.Options.Add(Adapter);
        command.Options.Add(Dtype);
        command.Options.Add(TemplateKwargs);
    }

    /// <summary>The --chat-template-kwargs variables (empty when not given).</summary>
    public IReadOnlyDictionary<string, object?> ReadTemplateVariables(ParseResult result)
    {
        var variables = new Dictionary<string, object?>();
        foreach (var item in result.GetValue(TemplateKwargs) ?? [])
            foreach (var (k, v) in ChatTemplateKwargs.Parse(item, "--chat-template-kwargs")) variables[k] = v;
        return variables;
    }

    /// <summary>The --dtype to load the model in (a one-line error for any other value).</summary>
    public ScalarType ReadDtype(ParseResult result) => Dtypes.Parse(result.GetValue(Dtype), "--dtype");

    /// <summary>The base model's directory (config, tokenizer, template) and the adapter's, if any.</summary>
    public (string ModelDir, string? AdapterDir) Read(ParseResult result)
    {
        var model = result.GetValue(Model)!;
        var adapter = result.GetValue(Adapter);
        if (adapter is not null || File.Exists(Path.Combine(model, HfCheckpoint.ConfigFile)) || !PeftAdapter.IsAdapter(model))
            return (model, adapter);
        var baseModel = PeftAdapter.ReadConfig(model).BaseModel;
        if (baseModel is null || !File.Exists(Path.Combine(baseModel, HfCheckpoint.ConfigFile)))
            throw new InputError($"--model: {model} is a LoRA adapter whose base model ({baseModel ?? "not named"}) is not a model directory here; give --model BASE --adapter {model}");
        return (baseModel, model);
    }

    /// <summary>Loads the base in <paramref name="dtype"/> and applies the adapter when there is one.</summary>
    public static CausalLM Load(string modelDir, string? adapterDir, ScalarType dtype = ScalarType.Float32)
    {
        var model = HfCheckpoint.Load(modelDir, dtype);
        try
        {
            if (adapterDir is not null) PeftAdapter.Load(model, adapterDir);
            model.eval();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
