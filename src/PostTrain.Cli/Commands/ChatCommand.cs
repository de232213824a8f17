using System.CommandLine;
using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Generation;
using PostTrain.Tokenization;

namespace PostTrain.Cli.Commands;

/// <summary>
/// `posttrain chat`: an interactive conversation with a model through its chat template. The
/// reply streams as it is generated; the conversation is kept between turns; /reset starts
/// over (keeping --system) and /exit (or end of input) quits.
/// </summary>
public static class ChatCommand
{
    /// <summary>Where the user's lines come from; tests replace standard input here.</summary>
    public static readonly AsyncLocal<TextReader?> Input = new();

    public static Command Create()
    {
        var model = new ModelArgs("Model directory with tokenizer files and a chat template");
        var system = new Option<string?>("--system") { Description = "A system message that starts the conversation" };
        var sampling = SamplingCli.Create();
        var command = new Command("chat", "Chat with a model interactively (streams the reply; /reset, /exit)") { system };
        model.AddTo(command);
        sampling.AddTo(command);
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var (modelDir, adapterDir) = model.Read(result);
            var dtype = model.ReadDtype(result);
            var templateVariables = model.ReadTemplateVariables(result);
            var config = HfCheckpoint.LoadConfig(modelDir);
            var options = sampling.Read(result, GenerationConfig.Load(modelDir, config));
            options.Validate();
            var tokenizer = GenerateCommand.Tokenizer(modelDir, "chat");
            var template = ChatTemplate.FromModelDirectory(modelDir);
            var systemText = result.GetValue(system);
            using var lm = ModelArgs.Load(modelDir, adapterDir, dtype);
            var engine = new GenerationEngine(lm, ids => tokenizer.Decode(ids, skipSpecialTokens: true));
            var input = Input.Value ?? Console.In;
            int holdBack = options.Stop.Count == 0 ? 0 : options.Stop.Max(x => x.Length) - 1;

            JsonArray Fresh() => systemText is null ? [] : [new JsonObject { ["role"] = "system", ["content"] = systemText }];
            var conversation = Fresh();
            stdout.WriteLine($"Chatting with {modelDir} ({config.ModelType}). /reset starts over, /exit quits.");
            for (int turn = 0; ; turn++)
            {
                stdout.Write("> ");
                stdout.Flush();
                var line = input.ReadLine();
                if (line is null || line.Trim() == "/exit") break;
                if (line.Trim() == "/reset")
                {
                    conversation = Fresh();
                    stdout.WriteLine("(conversation reset)");
                    continue;
                }
                if (line.Trim().Length == 0) continue;
                conversation.Add(new JsonObject { ["role"] = "user", ["content"] = line });
                var ids = tokenizer.Encode(ChatPrompt.Render(template, conversation, null, templateVariables, addGenerationPrompt: true, "chat"));
                if (ids.Length > config.MaxPositionEmbeddings || ids.Any(id => id >= config.VocabSize))
                {
                    conversation.RemoveAt(conversation.Count - 1);
                    stdout.WriteLine(ids.Length > config.MaxPositionEmbeddings
                        ? $"(the conversation has {ids.Length} tokens, more than the model's context of {config.MaxPositionEmbeddings}: /reset)"
                        : "(the text tokenizes to ids beyond the model's vocabulary)");
                    continue;
                }

                // Stream: print the decoded text as it grows, holding back an incomplete UTF-8 tail
                // and what could be the start of a stop string; the end comes from the completion.
                var tokens = new List<int>();
                int printed = 0;
                var completion = engine.Generate([ids], options with { N = 1, Seed = options.Seed + turn }, t =>
                {
                    tokens.Add(t.TokenId);
                    if (t.Finished) return;
                    var text = tokenizer.Decode(tokens, skipSpecialTokens: true);
                    int end = text.Length - holdBack;
                    while (end > printed && text[end - 1] == '\uFFFD') end--;
                    if (end > printed)
                    {
                        stdout.Write(text[printed..end]);
                        stdout.Flush();
                        printed = end;
                    }
                })[0][0];
                var reply = completion.Text ?? "";
                if (reply.Length > printed) stdout.Write(reply[printed..]);
                stdout.WriteLine();
                conversation.Add(new JsonObject { ["role"] = "assistant", ["content"] = reply });
            }
            return 0;
        }));
        return command;
    }
}
