using System.Text.Json.Nodes;
using PostTrain.Tokenization;
using PostTrain.Tokenization.Jinja;

namespace PostTrain.Tests.Tokenization;

/// <summary>Shared loading of the goldens written by tests/reference/render_templates.py (Python jinja2, set up as transformers does).</summary>
internal static class TemplateFixtures
{
    public static readonly DateTime FixedNow = new(2024, 7, 26, 9, 5, 3);
    public static string Dir => Path.Combine(AppContext.BaseDirectory, "Fixtures");

    public static JsonArray Load(string relative) => (JsonArray)JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, relative)))!;

    private static readonly Dictionary<string, ChatTemplate> Cache = [];

    public static ChatTemplate Template(string name)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue(name, out var t)) return t;
            var spec = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "templates", name + ".json")))!;
            var tokens = spec["special_tokens"]!.AsObject().ToDictionary(kv => kv.Key, kv => (string)kv.Value!);
            t = ChatTemplate.Parse((string)spec["chat_template"]!, name + ".json", tokens);
            t.Now = () => FixedNow;
            return Cache[name] = t;
        }
    }

    public static JsonObject Conversation(string name) =>
        (JsonObject)Load("templates/conversations.json").First(c => (string)c!["name"]! == name)!.DeepClone();
}

public class JinjaFeatureTemplateTests
{
    public static IEnumerable<object[]> Cases() =>
        TemplateFixtures.Load("jinja/features.json").Select(c => new object[] { (string)c!["name"]! });

    [Theory]
    [MemberData(nameof(Cases))]
    public void RendersLikeJinja2(string name)
    {
        var c = TemplateFixtures.Load("jinja/features.json").First(x => (string)x!["name"]! == name)!.AsObject();
        var source = (string)c["template"]!;
        var context = c["context"]!.AsObject().ToDictionary(kv => kv.Key, kv => (object?)kv.Value?.DeepClone());
        if (c["error"] is { } error)
        {
            var type = (string)c["error_type"]!;
            var ex = Assert.ThrowsAny<TemplateError>(() =>
            {
                var t = ChatTemplate.Parse(source, name);
                t.Now = () => TemplateFixtures.FixedNow;
                t.Render(context);
            });
            Assert.StartsWith(name + ":", ex.Message);
            if (type is "TemplateError" or "UndefinedError" or "SecurityError" or "TemplateAssertionError")
                Assert.Equal((string)error!, ex.Detail);
            return;
        }
        var template = ChatTemplate.Parse(source, name);
        template.Now = () => TemplateFixtures.FixedNow;
        var result = template.Render(context);
        Assert.Equal((string)c["text"]!, result.Text);
        var spans = c["generation_spans"]!.AsArray().Select(s => new CharSpan((int)s![0]!, (int)s[1]!)).ToList();
        Assert.Equal(spans, result.GenerationSpans);
    }
}

public class ChatTemplateGoldenTests
{
    public static IEnumerable<object[]> Cases()
    {
        var all = TemplateFixtures.Load("templates/expected.json");
        for (int i = 0; i < all.Count; i++)
        {
            var c = all[i]!;
            yield return [i, $"{c["template"]}/{c["conversation"]}/agp={c["add_generation_prompt"]}/{c["variables"]!.ToJsonString()}"];
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RendersByteIdentically(int index, string label)
    {
        var c = TemplateFixtures.Load("templates/expected.json")[index]!.AsObject();
        var template = TemplateFixtures.Template((string)c["template"]!);
        var conv = TemplateFixtures.Conversation((string)c["conversation"]!);
        var input = new ChatTemplateInput
        {
            Messages = conv["messages"]!.AsArray(),
            Tools = conv["tools"]?.AsArray(),
            Documents = conv["documents"]?.AsArray(),
            AddGenerationPrompt = (bool)c["add_generation_prompt"]!,
            Variables = c["variables"]!.AsObject().ToDictionary(kv => kv.Key, kv => (object?)kv.Value?.DeepClone()),
        };
        if (c["error"] is { } error)
        {
            var ex = Assert.ThrowsAny<TemplateError>(() => template.Render(input));
            Assert.Equal((string)error!, ex.Detail);
            return;
        }
        var result = template.Render(input);
        Assert.True((string)c["text"]! == result.Text, $"{label}: render differs");
        var spans = c["generation_spans"]!.AsArray().Select(s => new CharSpan((int)s![0]!, (int)s[1]!)).ToList();
        Assert.Equal(spans, result.GenerationSpans);
    }
}
