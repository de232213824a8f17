using System.CommandLine;
using PostTrain.Checkpoints;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain merge`: fold a LoRA adapter into its base and write a full model.</summary>
public static class MergeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "The base model directory the adapter was trained on", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "The LoRA adapter directory (PEFT layout)", Required = true };
        var output = new Option<string>("--output") { Description = "Directory for the merged model (must not exist)", Required = true };
        var dtype = new Option<string?>("--dtype") { Description = "dtype of the saved weights: float32 or bfloat16 (default: the base's torch_dtype)" };
        var command = new Command("merge", "Merge a LoRA adapter into its base model: a full model whose outputs equal base + adapter")
        {
            model, adapter, output, dtype,
        };
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var modelDir = result.GetValue(model)!;
            var adapterDir = result.GetValue(adapter)!;
            var outputDir = result.GetValue(output)!;
            if (Directory.Exists(outputDir) && Directory.EnumerateFileSystemEntries(outputDir).Any())
                throw new InputError($"--output: {outputDir} exists and is not empty");
            var config = HfCheckpoint.LoadConfig(modelDir);
            var saveType = (result.GetValue(dtype) ?? config.TorchDtype ?? "float32") switch
            {
                "float32" => ScalarType.Float32,
                "bfloat16" => ScalarType.BFloat16,
                "float16" => ScalarType.Float16,
                var other => throw new InputError($"--dtype: '{other}' is not one of float32, bfloat16"),
            };
            // Merge in float32, whatever the files hold, then save in the requested dtype.
            using var lm = HfCheckpoint.Load(modelDir);
            var lora = PeftAdapter.Load(lm, adapterDir);
            int layers = lm.Projections().Count(p => p.Projection.Adapter is not null);
            LoraAdapters.Merge(lm);
            if (Directory.Exists(outputDir)) Directory.Delete(outputDir);
            HfCheckpoint.Save(lm, outputDir, new SaveOptions { DType = saveType, CopyFilesFrom = modelDir });
            stdout.WriteLine($"Merged the adapter (r {lora.R}, alpha {lora.Alpha}, {layers} layers) into {modelDir}: wrote {outputDir}");
            return 0;
        }));
        return command;
    }
}
