using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization;
using PostTrain.Tokenization.Jinja;

namespace PostTrain.Cli.Commands;

/// <summary>
/// `posttrain template`: renders each JSONL conversation with the model's chat template.
/// Input lines: {"messages": [...], "tools": [...]?, "documents": [...]?}.
/// Output lines: {"text": "...", "assistant_spans": [[start, end], ...]}: UTF-16 character offsets into
/// "text" of each assistant turn (see <see cref="AssistantSpans"/> for the rule).
/// </summary>
public static class TemplateCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model directory (chat_template.jinja or tokenizer_config.json)", Required = true };
        var input = new Option<string>("--input") { Description = "JSONL file of {\"messages\", \"tools\"?, \"documents\"?}", Required = true };
        var output = new Option<string?>("--output") { Description = "Output JSONL file (default: stdout)" };
        var agp = new Option<bool>("--add-generation-prompt") { Description = "Append the assistant generation prompt" };
        var set = new Option<string[]>("--set") { Description = "Extra template variable KEY=JSON (repeatable), e.g. enable_thinking=false" };
        var name = new Option<string?>("--template-name") { Description = "A named template from tokenizer_config.json (e.g. tool_use)" };
        var command = new Command("template", "Render conversations with a model's chat template and locate assistant turns")
        {
            model, input, output, agp, set, name,
        };
        command.SetAction(result => Verbs.Guard(result, stdout => Run(
            result.GetValue(model)!, result.GetValue(input)!, result.GetValue(output), result.GetValue(agp),
            result.GetValue(set) ?? [], result.GetValue(name), stdout)));
        return command;
    }

    public static int Run(string modelDir, string inputPath, string? outputPath, bool addGenerationPrompt, string[] sets, string? templateName, TextWriter stdout)
    {
        var template = ChatTemplate.FromModelDirectory(modelDir, templateName);
        var variables = ChatTemplateKwargs.Parse(sets, "--set");
        if (!File.Exists(inputPath)) throw InputError.FileNotFound(inputPath);

        // The output is written to a temporary file and renamed (OutputFile), so an error on line
        // 737 leaves no partial output and an existing output file untouched.
        OutputFile.Write(outputPath, stdout, writer =>
        {
            long count = 0;
            foreach (var data in DatasetReader.ReadJsonLines(inputPath))
            {
                var record = data.Value;
                long lineNo = data.Line;
                var messages = record["messages"] as JsonArray ?? throw InputError.At(inputPath, lineNo, "messages", "expected an array of messages");
                for (int i = 0; i < messages.Count; i++)
                {
                    if (messages[i] is not JsonObject m) throw InputError.At(inputPath, lineNo, $"messages[{i}]", "expected an object");
                    if (m["role"] is not JsonValue role || role.GetValueKind() != JsonValueKind.String)
                        throw InputError.At(inputPath, lineNo, $"messages[{i}].role", "expected a string");
                }
                JsonArray? ArrayField(string field) => record[field] switch
                {
                    null => null,
                    JsonArray a => a,
                    _ => throw InputError.At(inputPath, lineNo, field, "expected an array"),
                };
                var tools = ArrayField("tools");
                var documents = ArrayField("documents");

                string text;
                IReadOnlyList<CharSpan> spans;
                try
                {
                    text = template.Render(new ChatTemplateInput
                    {
                        Messages = messages, Tools = tools, Documents = documents,
                        AddGenerationPrompt = addGenerationPrompt, Variables = variables,
                    }).Text;
                    spans = template.AssistantSpans(messages, tools, documents, variables);
                    if (addGenerationPrompt)
                    {
                        // Spans are found in the render without the generation prompt; keep those the
                        // prompted text shares (normally all: the prompt is appended at the end).
                        var plain = template.Render(new ChatTemplateInput
                        {
                            Messages = messages, Tools = tools, Documents = documents, Variables = variables,
                        }).Text;
                        int shared = 0;
                        while (shared < plain.Length && shared < text.Length && plain[shared] == text[shared]) shared++;
                        spans = spans.Where(s => s.End <= shared).ToList();
                    }
                }
                catch (TemplateError e)
                {
                    throw ChatPrompt.Error(e, $"{inputPath}:{lineNo}: messages");
                }
                var outRecord = new JsonObject
                {
                    ["text"] = text,
                    ["assistant_spans"] = new JsonArray(spans.Select(s => (JsonNode)new JsonArray(s.Start, s.End)).ToArray()),
                };
                writer.WriteLine(outRecord.ToJsonString(OutputOptions));
                count++;
            }
            if (count == 0) throw new InputError(DatasetReader.NoRecords(inputPath));
        });
        return 0;
    }

    private static readonly JsonSerializerOptions OutputOptions = new()
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
