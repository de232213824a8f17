using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// The one spelling of dtypes everywhere (options, config.yaml, help): torch's names float32,
/// bfloat16 and float16, as transformers' torch_dtype writes them; f32, bf16 and f16 are accepted
/// as aliases.
/// </summary>
public static class Dtypes
{
    public static readonly string[] Names = ["float32", "bfloat16", "float16"];

    public static readonly IReadOnlyDictionary<string, string> Aliases = new Dictionary<string, string>
    {
        ["f32"] = "float32", ["fp32"] = "float32", ["bf16"] = "bfloat16", ["f16"] = "float16", ["fp16"] = "float16",
    };

    /// <summary>The dtype a name or alias spells; an error naming <paramref name="where"/> for anything else.</summary>
    public static ScalarType Parse(string? text, string where)
    {
        var name = text is not null && Aliases.TryGetValue(text, out var canonical) ? canonical : text;
        return name switch
        {
            "float32" => ScalarType.Float32,
            "bfloat16" => ScalarType.BFloat16,
            "float16" => ScalarType.Float16,
            _ => throw new InputError($"{where}: '{text}' is not one of {string.Join(", ", Names)} (or {string.Join(", ", Aliases.Keys)})"),
        };
    }

    /// <summary>torch's name of a floating dtype.</summary>
    public static string Name(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        _ => dtype.ToString().ToLowerInvariant(),
    };
}
