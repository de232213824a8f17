using System.Text;
using System.Text.Json.Nodes;

namespace PostTrain.Tests.Cli;

/// <summary>
/// Issue 20 (part B): a torn metrics tail, lone surrogates, BOM / CRLF / non-UTF-8 bytes, empty
/// inputs, over-long logprobs sequences and atomic outputs each end in a named error or a clean run.
/// </summary>
public class InputFaultTests
{
    static string Write(string root, string name, string text)
    {
        var path = Path.Combine(root, name);
        File.WriteAllText(path, text, new UTF8Encoding(false));
        return path;
    }

    static string PromptCompletionData(string root, int count)
    {
        var names = new[] { "Ada", "Linus", "Grace", "Alan", "Barbara" };
        return Write(root, "train.jsonl", string.Join("\n", Enumerable.Range(0, count).Select(i => new JsonObject
        {
            ["prompt"] = $"Who wrote program {i}? ",
            ["completion"] = $"{names[i % names.Length]} did.",
        }.ToJsonString())) + "\n");
    }

    static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyDirectory(d, Path.Combine(to, Path.GetFileName(d)));
    }

    static List<double> Losses(string output) =>
        File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"]!.GetValue<double>()).ToList();

    [Fact]
    [Trait("Category", "Slow")]
    public void ResumeToleratesATornOrBlankMetricsTailAndNamesATornMiddleLine()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var data = PromptCompletionData(root, 24);
        string[] common = ["sft", "--model", model, "--data", data, "--max-steps", "8", "--batch-size", "4", "--logging-steps", "1",
            "--learning-rate", "0.002", "--warmup-steps", "2"];
        var full = Path.Combine(root, "full");
        var run = CliRunner.Run([.. common, "--output", full, "--save-steps", "4"]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        var expected = Losses(full);
        Assert.Equal(8, expected.Count);
        var metricsLines = File.ReadAllLines(Path.Combine(full, "metrics.jsonl"));

        // What kill -9 leaves after checkpoint-4: steps 5 and 6 logged, step 7 cut mid-write, or
        // every line written and a blank line after them; no later checkpoint, no final model.
        var cases = new Dictionary<string, string>
        {
            ["torn"] = string.Join("\n", metricsLines.Take(6)) + "\n" + metricsLines[6][..(metricsLines[6].Length / 2)],
            ["torn-crlf"] = string.Join("\r\n", metricsLines.Take(6)) + "\r\n" + metricsLines[6][..10],
            ["blank"] = string.Join("\n", metricsLines) + "\n\n",
            ["torn-after-checkpoint"] = string.Join("\n", metricsLines.Take(4)) + "\n" + metricsLines[4][..3],
        };
        foreach (var (name, metrics) in cases)
        {
            var part = Path.Combine(root, name);
            CopyDirectory(full, part);
            if (Directory.Exists(Path.Combine(part, "checkpoint-8"))) Directory.Delete(Path.Combine(part, "checkpoint-8"), true);
            File.Delete(Path.Combine(part, "model.safetensors"));
            File.WriteAllText(Path.Combine(part, "metrics.jsonl"), metrics);
            var (code, stdout, stderr) = CliRunner.Run([.. common, "--output", part, "--save-steps", "4", "--resume"]);
            Assert.True(code == 0, name + ": " + stderr);
            Assert.Contains("Resumed from", stdout);
            var losses = Losses(part);
            Assert.Equal(expected.Count, losses.Count);
            for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], losses[i], 1e-6);
        }

        // A torn line followed by complete ones is not what a crash leaves: a named error.
        var bad = Path.Combine(root, "bad");
        CopyDirectory(full, bad);
        File.Delete(Path.Combine(bad, "model.safetensors"));
        var lines = metricsLines.ToArray();
        lines[2] = lines[2][..7];
        File.WriteAllLines(Path.Combine(bad, "metrics.jsonl"), lines);
        var r = CliRunner.Run([.. common, "--output", bad, "--save-steps", "4", "--resume"]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{Path.Combine(bad, "metrics.jsonl")}:3: not a valid metrics line", r.Stderr);
        Assert.DoesNotContain("   at ", r.Stderr);
    }

    public static TheoryData<string> Verbs() => ["sft", "dpo", "reward", "grpo", "generate", "logprobs", "tokenize", "template"];

    [Theory]
    [MemberData(nameof(Verbs))]
    public void ALoneSurrogateIsBadInputNamingFileLineAndField(string verb)
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var output = Path.Combine(root, "out");
        const string lone = "\"\\ud800 x\"";
        const string ok = "{\"prompt\": \"What is 1 plus 1?\", \"completion\": \"2\"}\n";
        string input, field;
        string[] args;
        switch (verb)
        {
            case "sft":
                input = Write(root, "in.jsonl", ok + "{\"prompt\": \"Hi\", \"completion\": " + lone + "}\n");
                field = "completion";
                args = ["sft", "--model", model, "--data", input, "--output", output, "--max-steps", "1"];
                break;
            case "dpo" or "reward":
                input = Write(root, "in.jsonl", "{\"prompt\": \"Hi\", \"chosen\": \"a\", \"rejected\": \"b\"}\n{\"prompt\": \"Hi\", \"chosen\": \"a\", \"rejected\": " + lone + "}\n");
                field = "rejected";
                args = [verb, "--model", model, "--data", input, "--output", output, "--max-steps", "1"];
                break;
            case "grpo":
                input = Write(root, "in.jsonl", "{\"prompt\": \"What is 1 plus 1?\", \"answer\": \"2\"}\n{\"prompt\": " + lone + ", \"answer\": \"2\"}\n");
                field = "prompt";
                args = ["grpo", "--model", model, "--data", input, "--output", output, "--max-steps", "1", "--reward", "math",
                    "--num-generations", "2", "--batch-size", "2", "--max-completion-length", "4"];
                break;
            case "generate":
                input = Write(root, "in.jsonl", "{\"prompt\": \"Hi\"}\n{\"messages\": [{\"role\": \"user\", \"content\": " + lone + "}]}\n");
                field = "messages[0].content";
                args = ["generate", "--model", model, "--input", input, "--output", output, "--max-new-tokens", "2"];
                break;
            case "logprobs" or "tokenize":
                input = Write(root, "in.jsonl", "{\"text\": \"Hi\"}\n{\"text\": " + lone + "}\n");
                field = "text";
                args = [verb, "--model", model, "--input", input, "--output", output];
                break;
            default:
                input = Write(root, "in.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n{\"messages\": [{\"role\": \"user\", \"content\": " + lone + "}]}\n");
                field = "messages[0].content";
                args = ["template", "--model", model, "--input", input, "--output", output];
                break;
        }
        var (code, _, stderr) = CliRunner.Run(args);
        Assert.True(code == 2, stderr);
        Assert.Contains($"{input}:2: {field}: not valid Unicode text (a lone UTF-16 surrogate", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.False(File.Exists(output) || Directory.Exists(output), "no output is left");
    }

    [Fact]
    public void ByteOrderMarkAndCrlfAreAcceptedAndBytesThatAreNotUtf8AreNamed()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var plain = Write(root, "plain.jsonl", "{\"text\": \"Hello there\"}\n{\"text\": \"again\"}\n");
        var windows = Path.Combine(root, "windows.jsonl");
        File.WriteAllBytes(windows, [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("{\"text\": \"Hello there\"}\r\n{\"text\": \"again\"}\r\n")]);
        var a = CliRunner.Run("tokenize", "--model", model, "--input", plain);
        var b = CliRunner.Run("tokenize", "--model", model, "--input", windows);
        Assert.True(a.ExitCode == 0 && b.ExitCode == 0, a.Stderr + b.Stderr);
        Assert.Equal(a.Stdout, b.Stdout);

        var latin1 = Path.Combine(root, "latin1.jsonl");
        File.WriteAllBytes(latin1, [.. Encoding.UTF8.GetBytes("{\"text\": \"ok\"}\n{\"text\": \"caf"), 0xE9, .. Encoding.UTF8.GetBytes("\"}\n")]);
        foreach (var args in new[]
                 {
                     new[] { "tokenize", "--model", model, "--input", latin1 },
                     ["template", "--model", model, "--input", Write(root, "t.jsonl", "")],
                     ["sft", "--model", model, "--data", latin1, "--output", Path.Combine(root, "sft"), "--max-steps", "1"],
                 })
        {
            var (code, _, stderr) = CliRunner.Run(args);
            Assert.Equal(2, code);
            Assert.Single(stderr.Trim().Split('\n'));
            if (args[0] != "template") Assert.Contains($"{latin1}:2: not UTF-8: byte 0xE9 at byte 14 of the line", stderr);
        }
        // A .json array is read whole: the line of the bad byte is still named, and a BOM is skipped.
        var array = Path.Combine(root, "array.json");
        File.WriteAllBytes(array, [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("[\n{\"prompt\": \"a\", \"completion\": \"b\"},\n{\"prompt\": \"caf"), 0xE9, .. Encoding.UTF8.GetBytes("\", \"completion\": \"b\"}\n]\n")]);
        var r = CliRunner.Run("sft", "--model", model, "--data", array, "--output", Path.Combine(root, "sft2"), "--max-steps", "1");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{array}:3: not UTF-8: byte 0xE9", r.Stderr);
    }

    [Fact]
    public void AnEmptyInputFileIsAnErrorNamingIt()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var empty = Write(root, "empty.jsonl", "\n\r\n");
        foreach (var verb in new[] { "generate", "logprobs", "tokenize", "template" })
        {
            var output = Path.Combine(root, verb + ".jsonl");
            var (code, stdout, stderr) = CliRunner.Run(verb, "--model", model, "--input", empty, "--output", output);
            Assert.True(code == 2, verb + ": " + stderr + stdout);
            Assert.Contains($"error: {empty}: no records (the file is empty or holds only blank lines)", stderr);
            Assert.False(File.Exists(output));
        }
    }

    [Fact]
    public void LogprobsRejectsASequenceLongerThanTheModelsContext()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var configPath = Path.Combine(model, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!;
        config["max_position_embeddings"] = 64;
        File.WriteAllText(configPath, config.ToJsonString());
        var ids = string.Join(",", Enumerable.Repeat(5, 65));
        var input = Write(root, "in.jsonl", "{\"input_ids\": [5, 6]}\n{\"input_ids\": [" + ids + "]}\n");
        var (code, _, stderr) = CliRunner.Run("logprobs", "--model", model, "--input", input);
        Assert.Equal(2, code);
        Assert.Contains($"{input}:2: input_ids: 65 tokens, more than the model's context of 64 (max_position_embeddings)", stderr);

        // A 1 MB line of text is tokenized once and rejected, not scored.
        input = Write(root, "long.jsonl", "{\"text\": \"" + string.Concat(Enumerable.Repeat("word ", 200_000)) + "\"}\n");
        (code, _, stderr) = CliRunner.Run("logprobs", "--model", model, "--input", input);
        Assert.Equal(2, code);
        Assert.Matches($@"{System.Text.RegularExpressions.Regex.Escape(input)}:1: text: \d+ tokens, more than the model's context of 64", stderr);
    }

    [Fact]
    public void AFailedRunLeavesAnExistingOutputUntouchedAndNoTemporaryFile()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var good = string.Concat(Enumerable.Range(0, 5).Select(i => $"{{\"messages\": [{{\"role\": \"user\", \"content\": \"q{i}\"}}], \"text\": \"t{i}\"}}\n"));
        var input = Write(root, "in.jsonl", good + "{\"messages\": 3, \"text\": 4}\n");
        var outDir = Path.Combine(root, "out");
        Directory.CreateDirectory(outDir);
        foreach (var verb in new[] { "template", "tokenize" })
        {
            var output = Path.Combine(outDir, verb + ".jsonl");
            File.WriteAllText(output, "previous output\n");
            var (code, _, stderr) = CliRunner.Run(verb, "--model", model, "--input", input, "--output", output);
            Assert.True(code == 2, stderr);
            Assert.Contains($"{input}:6:", stderr);
            Assert.Equal("previous output\n", File.ReadAllText(output));
            Assert.Equal([output], Directory.GetFiles(outDir).Where(f => f.Contains(verb)));

            // And a good input replaces it whole.
            var fine = Write(root, "fine.jsonl", good);
            (code, _, stderr) = CliRunner.Run(verb, "--model", model, "--input", fine, "--output", output);
            Assert.True(code == 0, stderr);
            Assert.Equal(5, File.ReadAllLines(output).Length);
        }
    }

    [Fact]
    public void GrpoSaysHowManyPromptsItTruncated()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var data = Write(root, "p.jsonl", "{\"prompt\": \"What is 1 plus 1?\", \"answer\": \"2\"}\n{\"prompt\": \"" +
            string.Concat(Enumerable.Repeat("a very long question ", 40)) + "\", \"answer\": \"2\"}\n");
        var (code, stdout, stderr) = CliRunner.Run("grpo", "--model", model, "--data", data, "--output", Path.Combine(root, "run"), "--max-steps", "1",
            "--reward", "math", "--num-generations", "2", "--batch-size", "2", "--max-completion-length", "4", "--max-length", "24");
        Assert.True(code == 0, stderr + stdout);
        Assert.Matches(@"Truncated 1 train prompts to their last \d+ tokens \(--max-length", stdout);
    }
}
