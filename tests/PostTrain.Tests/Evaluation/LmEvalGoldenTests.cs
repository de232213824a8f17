using System.Text.Json.Nodes;
using PostTrain.Evaluation;
using PostTrain.Tokenization;
using Xunit;

namespace PostTrain.Tests.Evaluation;

/// <summary>
/// Prompts, requests, filtered responses, per-document metrics and aggregated results against
/// lm-evaluation-harness's own evaluator run on the same tasks, data and responses
/// (tests/reference/eval_task_goldens.py writes Fixtures/eval/tasks/golden.json).
/// </summary>
public class LmEvalGoldenTests
{
    static readonly string Root = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../.."));
    static readonly JsonArray Cases = JsonNode.Parse(File.ReadAllText(Path.Combine(Root, "tests/PostTrain.Tests/Fixtures/eval/tasks/golden.json")))!["cases"]!.AsArray();

    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var c in Cases) data.Add(c!["name"]!.GetValue<string>());
        return data;
    }

    static string Rel(JsonNode c, string key) => Path.Combine(Root, c[key]!.GetValue<string>());

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void EqualsLmEval(string name)
    {
        var c = Cases.First(x => x!["name"]!.GetValue<string>() == name)!;
        int shots = c["num_fewshot"]!.GetValue<int>();
        var task = EvalTask.Load(Rel(c, "task_yaml"), shots);
        double? limit = c["limit"] is JsonValue l ? l.GetValue<double>() : null;
        task.LoadDocuments(Rel(c, "data_dir"), limit);
        bool chat = c["apply_chat_template"]!.GetValue<bool>();
        var prompt = new EvalTask.PromptOptions(c["system_instruction"]?.GetValue<string>(), chat, c["fewshot_as_multiturn"]!.GetValue<bool>());
        var template = ChatTemplate.Parse(TestTokenizers.ChatMlTemplate, "chatml");
        string Render(JsonArray messages) => template.Render(new ChatTemplateInput { Messages = messages, AddGenerationPrompt = true }).Text;

        var contexts = task.Contexts(prompt, Render);
        var expectedContexts = c["contexts"]!.AsArray().Select(x => x!.GetValue<string>()).ToList();
        Assert.Equal(expectedContexts.Count, contexts.Count);
        for (int i = 0; i < contexts.Count; i++) Assert.Equal(expectedContexts[i], contexts[i]);

        var result = Evaluator.ScoreResponses(task, Rel(c, "responses"), prompt, Render);
        var filters = c["doc_metrics"]!.AsObject();
        foreach (var (filter, docMetrics) in filters)
        {
            var samples = result.Samples.Where(s => s.Filter == filter).ToList();
            Assert.Equal(docMetrics!.AsArray().Count, samples.Count);
            for (int d = 0; d < samples.Count; d++)
            {
                // Arguments: (context, continuation) per choice, or (context, generation kwargs).
                var expectedArgs = c["arguments"]![d]!.AsArray();
                Assert.Equal(expectedArgs.Count, samples[d].Arguments.Count);
                for (int a = 0; a < expectedArgs.Count; a++)
                {
                    Assert.Equal(expectedArgs[a]![0]!.GetValue<string>(), samples[d].Arguments[a]![0]!.GetValue<string>());
                    if (expectedArgs[a]![1] is JsonValue cont) Assert.Equal(cont.GetValue<string>(), samples[d].Arguments[a]![1]!.GetValue<string>());
                }
                foreach (var (metric, value) in docMetrics[d]!.AsObject())
                    Assert.Equal(value!.GetValue<double>(), ToDouble(samples[d].Metrics[metric]), 12);
                if (task.Output == OutputType.GenerateUntil)
                {
                    var expectedFiltered = c["filtered_resps"]![filter]![d]!;
                    var expectedText = expectedFiltered is JsonArray fa ? fa[0]!.GetValue<string>() : expectedFiltered.GetValue<string>();
                    Assert.Equal(expectedText, samples[d].FilteredResps[0]!.GetValue<string>());
                }
            }
        }
        var results = c["results"]!.AsObject();
        foreach (var m in result.Metrics)
        {
            Assert.Equal(results[$"{m.Metric},{m.Filter}"]!.GetValue<double>(), m.Value, 12);
            var stderr = results[$"{m.Metric}_stderr,{m.Filter}"]!;
            if (stderr.GetValueKind() == System.Text.Json.JsonValueKind.String) Assert.Null(m.Stderr);
            else Assert.Equal(stderr.GetValue<double>(), m.Stderr!.Value, 12);
        }
        Assert.Equal(results.Count(kv => kv.Key.Contains(',') && !kv.Key.Contains("_stderr,")), result.Metrics.Count);
    }

    static double ToDouble(JsonNode node) => node is JsonValue v && v.TryGetValue<bool>(out var b) ? (b ? 1 : 0) : node.GetValue<double>();
}
