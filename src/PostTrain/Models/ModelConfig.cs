namespace PostTrain.Models;

/// <summary>The Hugging Face config.json of a decoder checkpoint (filled in by the foundation work).</summary>
public sealed class ModelConfig
{
    public string ModelType { get; set; } = "qwen2";
}
