using System.Text.Json.Nodes;

namespace PostTrain.Tests;

/// <summary>
/// A tiny byte-level BPE tokenizer in Hugging Face's tokenizer.json format (Qwen2-style
/// pre-tokenizer, 256 byte tokens, a few merges, ChatML special tokens and chat template), so
/// tests can run real text through tiny models with a vocabulary of a few hundred ids.
/// </summary>
public static class TestTokenizers
{
    public const string ChatMlTemplate =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    static readonly string[] Merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "r e", "Ġ s", "a n"];

    /// <summary>Writes tokenizer.json and tokenizer_config.json into <paramref name="dir"/>; returns the vocabulary size.</summary>
    public static int WriteTiny(string dir, string? chatTemplate = ChatMlTemplate)
    {
        Directory.CreateDirectory(dir);
        var vocab = new JsonObject();
        var byteChars = ByteToUnicode();
        for (int b = 0; b < 256; b++) vocab[byteChars[b].ToString()] = b;
        int next = 256;
        foreach (var merge in Merges) vocab[merge.Replace(" ", "")] = next++;
        var specials = new[] { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };
        var added = new JsonArray();
        foreach (var s in specials)
            added.Add(new JsonObject { ["id"] = next++, ["content"] = s, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true });
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split",
                        ["pattern"] = new JsonObject { ["Regex"] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
                        ["behavior"] = "Isolated",
                        ["invert"] = false,
                    },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false }),
            },
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "", ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(Merges.Select(m => (JsonNode)m).ToArray()),
            },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokenizer.ToJsonString());
        var config = new JsonObject
        {
            ["bos_token"] = null,
            ["eos_token"] = "<|im_end|>",
            ["pad_token"] = "<|endoftext|>",
            ["model_max_length"] = 2048,
            ["tokenizer_class"] = "Qwen2Tokenizer",
        };
        if (chatTemplate is not null) config["chat_template"] = chatTemplate;
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
        return next;
    }

    // GPT-2's reversible byte -> printable character map used by ByteLevel.
    static char[] ByteToUnicode()
    {
        var map = new char[256];
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        int n = 0;
        for (int b = 0; b < 256; b++)
            map[b] = printable.Contains(b) ? (char)b : (char)(256 + n++);
        return map;
    }
}
