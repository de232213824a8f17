using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using PostTrain.Demo;
using PostTrain.Tokenization;

namespace PostTrain.Cli.Commands;

/// <summary>
/// `posttrain demo`: post-training in miniature. A small Qwen3-architecture model with a
/// tokenizer learned from the demo's corpus is pre-trained on made-up facts, then taught to
/// follow instructions (SFT), to call itself Orca instead of Qwen (DPO), and to get held-out
/// arithmetic right more often (GRPO with the math reward), and, beside GRPO from the same DPO
/// model, PPO with a reward model trained on the DPO model's own answers scored by the math
/// checker; after each stage the same held-out evaluation runs. Every stage is an ordinary `posttrain` command run in-process, recorded in
/// OUTPUT/report.md so it can be repeated by hand.
/// </summary>
public static class DemoCommand
{
    const string Marker = ".posttrain-demo";

    /// <summary>Step counts and sizes of a full and a --quick demo.</summary>
    sealed record Plan(int PretrainEpochs, int SftEpochs, int DpoSteps, int GrpoSteps, int GrpoBatch, int RewardPrompts, int RewardSamples, int RewardEpochs, int PpoRollouts, int PpoBatch,
        int Hidden, int Layers, int Intermediate, int Merges, int EvalLimit);

    // GRPO takes 120 steps of 32 samples (4 problems, 8 answers each) and PPO 10 rollouts of 32: on a 2-core AMD EPYC
    // without AVX-512, GRPO's 200 steps of 64 and PPO's 16 rollouts of 64 made the demo take 362 s (GRPO 0.96 held-out
    // on seed 0); from the same DPO model of seed 0, 150 steps of 32 gave 0.790 and 120 gave 0.805, and PPO's 12 rollouts
    // and 10 both 0.565, 17 s sooner. Fewer pre-training or SFT epochs cost SFT its arithmetic.
    static readonly Plan Full = new(PretrainEpochs: 30, SftEpochs: 10, DpoSteps: 200, GrpoSteps: 120, GrpoBatch: 32, RewardPrompts: 0, RewardSamples: 8, RewardEpochs: 2, PpoRollouts: 10, PpoBatch: 32,
        Hidden: 128, Layers: 4, Intermediate: 384, Merges: 400, EvalLimit: 0);
    static readonly Plan Quick = new(PretrainEpochs: 1, SftEpochs: 1, DpoSteps: 2, GrpoSteps: 2, GrpoBatch: 64, RewardPrompts: 8, RewardSamples: 2, RewardEpochs: 1, PpoRollouts: 1, PpoBatch: 16,
        Hidden: 32, Layers: 1, Intermediate: 64, Merges: 50, EvalLimit: 4);

    /// <summary>
    /// How GRPO, PPO and the reward model's samples draw answers: the same temperature and length
    /// everywhere, so the reward model is trained on answers like those PPO asks it to score.
    /// </summary>
    const string SampleTemperature = "0.5", CompletionTokens = "28";

    /// <summary>PPO's optimiser steps per rollout (--num-ppo-epochs; one mini-batch each).</summary>
    const int PpoEpochs = 4;

    public static Command Create()
    {
        var output = new Option<string>("--output") { Description = "Directory for the demo's runs and report (a previous demo there is replaced)", DefaultValueFactory = _ => "runs/demo" };
        var seed = new Option<int>("--seed") { Description = "Seed of the data, the model and every stage", DefaultValueFactory = _ => 0 };
        var quick = new Option<bool>("--quick") { Description = "Tiny sizes and step counts: every stage and artifact in seconds, no real learning" };
        var lora = new Option<bool>("--lora") { Description = "SFT, DPO, GRPO and PPO as LoRA stages (each stage's adapter merged into the next stage's base)" };
        var command = new Command("demo", "Post-training in miniature: pre-training, SFT, DPO, then GRPO and (beside it) PPO with a trained reward model, on a small model, evaluated after every stage") { output, seed, quick, lora };
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var stderr = result.InvocationConfiguration.Error;
            return Run(result.GetValue(output)!, result.GetValue(seed), result.GetValue(quick), result.GetValue(lora), stdout, stderr);
        }));
        return command;
    }

    static int Run(string output, int seed, bool quick, bool lora, TextWriter stdout, TextWriter stderr)
    {
        var plan = quick ? Quick : Full;
        var clock = Stopwatch.StartNew();
        if (File.Exists(output)) throw new InputError($"--output: {output} is a file");
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
        {
            if (!File.Exists(Path.Combine(output, Marker)))
                throw new InputError($"--output: {output} is not empty and holds no earlier demo; choose another directory");
            Directory.Delete(output, recursive: true);
        }
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, Marker), "a posttrain demo directory: `posttrain demo` replaces it\n");
        string P(params string[] parts) => Path.Combine([output, .. parts]);
        var s = seed.ToString(System.Globalization.CultureInfo.InvariantCulture);

        // The data and the task files.
        stdout.WriteLine($"== Data: {P("data")}");
        var data = new DemoData(seed);
        Directory.CreateDirectory(P("data"));
        Directory.CreateDirectory(P("tasks"));
        var pretrain = data.PretrainingDocuments();
        var sft = data.SftConversations();
        var preferences = data.DpoPreferences();
        WriteJsonl(P("data", "pretrain.jsonl"), pretrain.Select(t => new JsonObject { ["text"] = t }));
        WriteJsonl(P("data", "sft.jsonl"), sft);
        WriteJsonl(P("data", "dpo.jsonl"), preferences);
        WriteJsonl(P("data", "grpo.jsonl"), data.GrpoPrompts());
        WriteJsonl(P("data", "arithmetic.jsonl"), Limit(data.ArithmeticTest(), plan.EvalLimit));
        WriteJsonl(P("data", "arithmetic_practised.jsonl"), Limit(data.PractisedArithmeticTest(), plan.EvalLimit));
        WriteJsonl(P("data", "identity.jsonl"), Limit(data.IdentityTest(), plan.EvalLimit));
        WriteJsonl(P("data", "capitals.jsonl"), Limit(data.CapitalsTest(), plan.EvalLimit));
        var rewardPrompts = Limit(data.RewardModelPrompts(), plan.RewardPrompts).ToList();
        WriteJsonl(P("data", "reward_prompts.jsonl"), rewardPrompts.Select(r => new JsonObject { ["messages"] = r["messages"]!.DeepClone() }));
        foreach (var (name, text) in DemoTasks.Files) File.WriteAllText(P("tasks", name + ".yaml"), text);
        stdout.WriteLine($"{pretrain.Count} pre-training documents, {sft.Count} SFT conversations, {preferences.Count} preference pairs, " +
                         $"{data.RlPairs.Count} GRPO prompts; held out: {data.HeldOutPairs.Count} addition problems, 10 identity questions, {DemoData.CapitalsTestCount} capitals questions");

        // The tokenizer: byte-level BPE learned from the corpus, with a ChatML template.
        stdout.WriteLine($"== Tokenizer: {P("tokenizer")}");
        var corpus = pretrain.Concat(sft.SelectMany(c => c["messages"]!.AsArray().Select(m => m!["content"]!.GetValue<string>())));
        BpeTrainer.Train(corpus, P("tokenizer"), new BpeTrainerOptions(Merges: plan.Merges));
        var vocab = HfTokenizer.FromDirectory(P("tokenizer")).VocabSize;
        stdout.WriteLine($"byte-level BPE: {vocab} tokens ({plan.Merges} merges learned from the corpus)");

        var commands = new List<string>();
        void Posttrain(params string[] args)
        {
            var line = "./posttrain " + string.Join(" ", args.Select(Quote));
            commands.Add(line);
            stdout.WriteLine("$ " + line);
            int code = Program.Run(args, stdout, stderr);
            if (code != 0) throw new InputError($"demo: the command failed (exit {code}): {line}");
        }
        var stages = new List<DemoStage>();
        var evalTasks = string.Join(",", DemoTasks.Files.Keys.Select(k => P("tasks", k + ".yaml")));
        var evalData = DemoTasks.Files.Keys.SelectMany(k => new[] { "--data", $"{k}={P("data", DemoTasks.DataName(k) + ".jsonl")}" }).ToArray();
        // A stage's commands are those run since it started (`from`), its evaluation included.
        void Evaluate(string stage, string model, string? adapter, string? runDir, int from)
        {
            var evalDir = P("eval", stage);
            Posttrain(["eval", "--model", model, .. adapter is null ? Array.Empty<string>() : ["--adapter", adapter], "--tasks", evalTasks, .. evalData,
                "--apply-chat-template", "--output", evalDir, "--seed", s]);
            stages.Add(new DemoStage(stage, runDir, evalDir, commands.Skip(from).ToList()));
            stdout.WriteLine($"-- {stage} done at {clock.Elapsed.TotalSeconds:F0} s");
        }

        // 0. The base model: random weights, then pre-training on the documents (every token).
        stdout.WriteLine("== 0. Base model: pre-training on made-up documents");
        int mark = commands.Count;
        Posttrain("init", "--arch", "qwen3", "--preset", "tiny", "--hidden-size", $"{plan.Hidden}", "--layers", $"{plan.Layers}", "--heads", "4",
            "--kv-heads", "2", "--head-dim", $"{plan.Hidden / 4}", "--intermediate-size", $"{plan.Intermediate}", "--tokenizer", P("tokenizer"),
            "--seed", s, "--output", P("init"));
        Posttrain("sft", "--model", P("init"), "--data", P("data", "pretrain.jsonl"), "--output", P("base"), "--packing", "--max-length", "128",
            "--epochs", $"{plan.PretrainEpochs}", "--batch-size", "16", "--learning-rate", "3e-3", "--lr-scheduler", "cosine", "--warmup-ratio", "0.05",
            "--logging-steps", "10", "--save-steps", "0", "--seed", s);
        Evaluate("base", P("base"), null, P("base"), mark);

        // 1. SFT: follow instructions (word problems with a chain, identity, capitals).
        stdout.WriteLine("== 1. SFT: answering in the conversations' form");
        mark = commands.Count;
        string[] loraArgs = lora ? ["--lora", "--lora-r", "16", "--lora-alpha", "32"] : [];
        Posttrain(["sft", "--model", P("base"), "--data", P("data", "sft.jsonl"), "--output", P("sft"), "--epochs", $"{plan.SftEpochs}",
            "--batch-size", "16", "--learning-rate", lora ? "3e-3" : "1e-3", "--lr-scheduler", "cosine", "--warmup-ratio", "0.05",
            "--logging-steps", "10", "--save-steps", "0", "--max-length", "128", "--seed", s, .. loraArgs]);
        string sftModel = P("sft");
        if (lora)
        {
            Evaluate("sft", P("base"), P("sft"), P("sft"), mark);
            mark = commands.Count;
            Posttrain("merge", "--model", P("base"), "--adapter", P("sft"), "--output", P("sft-merged"));
            sftModel = P("sft-merged");
        }
        else Evaluate("sft", sftModel, null, P("sft"), mark);

        // 2. DPO: prefer "I am Orca..." to "I am Qwen..." (reference: the SFT model), with SFT's own answers to its
        // problems and capital questions preferred to bare wrong guesses beside them (DemoData.DpoPreferences).
        // 200 steps at 1e-4 moved held-out arithmetic less than 100 at 2e-4 (docs/demo.md); the reference's log-probabilities
        // are computed once, before training, which makes the 200 steps cost what 100 did. Beta 0.5, not TRL's 0.1:
        // -log sigmoid(beta * margin) stops pushing once beta * margin is a few nats, so a larger beta stops sooner:
        // seed 0 ends with log-ratio margins near 20 nats and the rejected answers' log-probabilities where they
        // began (-38, from -41), against 41 nats and -60 at beta 0.1, and the rest of the model moves less (docs/demo.md).
        stdout.WriteLine("== 2. DPO: a new identity");
        if (!lora) mark = commands.Count;
        Posttrain(["dpo", "--model", sftModel, "--data", P("data", "dpo.jsonl"), "--output", P("dpo"), "--max-steps", $"{plan.DpoSteps}",
            "--batch-size", "8", "--learning-rate", lora ? "5e-4" : "1e-4", "--beta", "0.5", "--rpo-alpha", "1", "--precompute-ref-logps", "--logging-steps", "4", "--save-steps", "0",
            "--seed", s, .. loraArgs]);
        string dpoModel = P("dpo");
        if (lora)
        {
            Evaluate("dpo", sftModel, P("dpo"), P("dpo"), mark);
            mark = commands.Count;
            Posttrain("merge", "--model", sftModel, "--adapter", P("dpo"), "--output", P("dpo-merged"));
            dpoModel = P("dpo-merged");
        }
        else Evaluate("dpo", dpoModel, null, P("dpo"), mark);

        // 3. GRPO: sample, score with the math reward (and the "#### N" format), move toward the right answers.
        // Temperature 0.5 and learning rate 5e-5 (higher rates and temperature 1 lost accuracy in the first steps on a
        // model this small); the KL penalty (beta 0.1) keeps the worked steps honest: without it the final answers
        // drift away from the steps written before them.
        stdout.WriteLine("== 3. GRPO: arithmetic from rewards");
        if (!lora) mark = commands.Count;
        Posttrain(["grpo", "--model", dpoModel, "--data", P("data", "grpo.jsonl"), "--output", P("grpo"), "--max-steps", $"{plan.GrpoSteps}",
            "--reward", "math,format", "--format-pattern", @".*\n#### -?\d+", "--reward-weights", "1,0.2", "--num-generations", "8",
            "--batch-size", $"{plan.GrpoBatch}", "--max-completion-length", CompletionTokens, "--temperature", SampleTemperature, "--learning-rate", lora ? "2.5e-4" : "5e-5",
            "--warmup-ratio", "0.05", "--beta", "0.1", "--logging-steps", "5", "--save-steps", "0", "--log-completions-steps", "20", "--seed", s, .. loraArgs]);
        Evaluate("grpo", lora ? dpoModel : P("grpo"), lora ? P("grpo") : null, P("grpo"), mark);

        // 4. PPO, also from the DPO model, beside GRPO: the DPO model answers the GRPO problems (in wordings of
        // their own) several times; the math checker splits its answers into right and wrong, which make the
        // preference pairs of a reward model; PPO then trains on GRPO's prompts with that model as its only reward
        // (the math reward rides along with weight 0, so completions.jsonl shows how often the answers are right).
        stdout.WriteLine("== 4. PPO: arithmetic from a trained reward model");
        mark = commands.Count;
        Posttrain("generate", "--model", dpoModel, "--input", P("data", "reward_prompts.jsonl"), "--output", P("data", "reward_samples.jsonl"),
            "--n", $"{plan.RewardSamples}", "--temperature", SampleTemperature, "--top-k", "0", "--max-new-tokens", CompletionTokens, "--batch-size", "64", "--seed", s);
        var sampled = File.ReadLines(P("data", "reward_samples.jsonl"))
            .Select(l => (IReadOnlyList<string>)JsonNode.Parse(l)!["completions"]!.AsArray().Select(c => c!["text"]!.GetValue<string>()).ToList()).ToList();
        var rewardPairs = DemoData.SampledPreferences(rewardPrompts, sampled, perPrompt: 4);
        if (rewardPairs.Count == 0) throw new InputError("demo: no sampled answer to the reward model's prompts was wrong, so there are no preference pairs to train it on");
        WriteJsonl(P("data", "reward.jsonl"), rewardPairs);
        stdout.WriteLine($"{rewardPairs.Count} preference pairs (right answer chosen, wrong one rejected) from {sampled.Sum(x => x.Count)} sampled answers");
        Posttrain("reward", "--model", dpoModel, "--data", P("data", "reward.jsonl"), "--output", P("reward"), "--epochs", $"{plan.RewardEpochs}",
            "--batch-size", "16", "--learning-rate", "1e-4", "--lr-scheduler", "cosine", "--warmup-ratio", "0.05", "--logging-steps", "5",
            "--save-steps", "0", "--seed", s);
        Posttrain(["ppo", "--model", dpoModel, "--data", P("data", "grpo.jsonl"), "--output", P("ppo"), "--max-steps", $"{plan.PpoRollouts * PpoEpochs}",
            "--reward", "model,math", "--reward-model", P("reward"), "--reward-weights", "1,0", "--batch-size", $"{plan.PpoBatch}", "--num-ppo-epochs", $"{PpoEpochs}",
            "--max-completion-length", CompletionTokens, "--temperature", SampleTemperature, "--learning-rate", lora ? "2.5e-4" : "5e-5", "--warmup-ratio", "0.05", "--kl-coef", "0.05",
            "--logging-steps", $"{PpoEpochs}", "--save-steps", "0", "--log-completions-steps", "1", "--seed", s, .. loraArgs]);
        Evaluate("ppo", lora ? dpoModel : P("ppo"), lora ? P("ppo") : null, P("ppo"), mark);

        // Each stage against the one it started from, document by document (paired differences, intervals, tests).
        var comparisons = new List<(string Title, string Command, string Dir)>();
        for (int i = 1; i < stages.Count; i++)
        {
            var before = stages[i].Name == "ppo" ? stages.Single(x => x.Name == "dpo") : stages[i - 1];
            var dir = P("compare", $"{before.Name}-{stages[i].Name}");
            var line = $"./posttrain eval-compare {Quote(before.EvalDir)} {Quote(stages[i].EvalDir)} --output {Quote(dir)}";
            var quiet = new StringWriter();
            int code = Program.Run(["eval-compare", before.EvalDir, stages[i].EvalDir, "--output", dir], quiet, stderr);
            if (code != 0) throw new InputError($"demo: the command failed (exit {code}): {line}");
            comparisons.Add(($"{stages[i].Name} against {before.Name}", line, dir));
        }

        // The report.
        var table = DemoReport.Table(stages);
        File.WriteAllBytes(P("report.png"), DemoReport.Png(stages, P("base"), P("sft"), P("dpo"), P("grpo"), P("ppo")));
        var worked = DemoReport.WorkedTable(stages);
        File.WriteAllText(P("report.md"), Report(stages, table, worked, comparisons, output, seed, quick, lora, clock.Elapsed));
        stdout.WriteLine();
        stdout.WriteLine("== Held-out evaluation after each stage (value ± standard error)");
        stdout.Write(table);
        stdout.WriteLine();
        stdout.WriteLine("== How the held-out addition problems were worked (answers; right ones in brackets)");
        stdout.Write(worked);
        stdout.WriteLine();
        stdout.Write(SampleAnswers(stages, 2));
        stdout.WriteLine($"Report: {P("report.md")} and {P("report.png")} ({clock.Elapsed.TotalSeconds:F0} s)");
        return 0;
    }

    static IEnumerable<JsonObject> Limit(List<JsonObject> rows, int limit) => limit > 0 ? rows.Take(limit) : rows;

    static void WriteJsonl(string path, IEnumerable<JsonObject> rows) =>
        File.WriteAllLines(path, rows.Select(r => r.ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping })));

    static string Quote(string arg) => arg.Length > 0 && arg.All(c => char.IsLetterOrDigit(c) || "-_./=,:+".Contains(c)) ? arg : "'" + arg.Replace("'", "'\\''") + "'";

    static string SampleAnswers(IReadOnlyList<DemoStage> stages, int count)
    {
        var sb = new StringBuilder();
        foreach (var (task, filter, title) in new[] { ("arithmetic", "strict-match", "Held-out arithmetic"), ("identity_orca", "name", "Held-out identity questions") })
        {
            sb.AppendLine($"{title}:");
            var perStage = stages.Select(s => (s.Name, Answers: DemoReport.Answers(s.EvalDir, task, filter, count))).ToList();
            for (int i = 0; i < perStage[0].Answers.Count; i++)
            {
                sb.AppendLine($"  Q: {perStage[0].Answers[i].Question}");
                foreach (var (name, answers) in perStage)
                    sb.AppendLine($"    {name,-5} {answers[i].Response.Replace("\n", " ⏎ ")}");
            }
        }
        return sb.ToString();
    }

    static string Report(IReadOnlyList<DemoStage> stages, string table, string worked, IReadOnlyList<(string Title, string Command, string Dir)> comparisons,
        string output, int seed, bool quick, bool lora, TimeSpan elapsed)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# PostTrain demo");
        sb.AppendLine();
        sb.AppendLine($"`posttrain demo --output {output} --seed {seed}{(quick ? " --quick" : "")}{(lora ? " --lora" : "")}`, {DateTime.UtcNow:yyyy-MM-dd}, {elapsed.TotalSeconds:F0} s on {Environment.ProcessorCount} cores.");
        sb.AppendLine();
        sb.AppendLine("A small Qwen3-architecture model with a byte-level BPE tokenizer learned from the demo's corpus is pre-trained on made-up");
        sb.AppendLine("documents (one-digit addition facts, stories with sums, the assistant's name, capitals), then taught to answer in");
        sb.AppendLine("conversations (SFT: most word problems answered in one line, the rest column by column), to call itself Orca rather than");
        sb.AppendLine("Qwen (DPO, with SFT's own answers preferred to bare wrong guesses so that the rest moves less), and to solve addition");
        sb.AppendLine("word problems more often: GRPO with the math reward, and beside it, also from the DPO model, PPO with a reward model");
        sb.AppendLine("trained on the DPO model's own answers (right ones chosen over wrong ones, as the math checker tells them apart). The");
        sb.AppendLine("evaluation asks about what no training conversation used: sums no stage shows in either order (nor a pre-training story), identity");
        sb.AppendLine("questions in new phrasings, capitals asked in new phrasings (eight of the countries never appear in a conversation).");
        sb.AppendLine("The ppo column is PPO from the DPO model, not after GRPO.");
        sb.AppendLine();
        sb.AppendLine("## Held-out evaluation after each stage (value ± standard error)");
        sb.AppendLine();
        sb.Append(table);
        sb.AppendLine();
        sb.AppendLine("![training curves and evaluation](report.png)");
        sb.AppendLine();
        sb.AppendLine("## How the held-out addition problems were worked");
        sb.AppendLine();
        sb.AppendLine("The strict arithmetic answers above, by method: column by column (`Units: 8+5=13. Tens: 3+2+1=6.`) or in one line");
        sb.AppendLine("(`38+25=63.`), with the right ones in brackets; then the right answers whose every written step is right, and those");
        sb.AppendLine("whose total is right under a wrong (or no) step. The math reward, like the strict filter, reads only the `#### N`.");
        sb.AppendLine();
        sb.Append(worked);
        sb.AppendLine();
        sb.AppendLine("## What each stage changed, document by document");
        sb.AppendLine();
        sb.AppendLine("Paired differences over the same held-out documents, with a bootstrap 95% interval and McNemar's exact test");
        sb.AppendLine("(`posttrain eval-compare`; each comparison's directory also holds comparison.json and comparison.png).");
        sb.AppendLine();
        foreach (var (title, command, dir) in comparisons)
        {
            sb.AppendLine($"### {title}");
            sb.AppendLine();
            sb.AppendLine("```bash");
            sb.AppendLine(command);
            sb.AppendLine("```");
            sb.AppendLine();
            foreach (var l in File.ReadAllLines(Path.Combine(dir, "comparison.md")).Where(l => l.StartsWith('|'))) sb.AppendLine(l);
            sb.AppendLine();
        }
        sb.AppendLine("## Answers after each stage (greedy)");
        sb.AppendLine();
        sb.AppendLine("```");
        sb.Append(SampleAnswers(stages, 3));
        sb.AppendLine("```");
        sb.AppendLine();
        sb.AppendLine("## The commands each stage ran");
        sb.AppendLine();
        sb.AppendLine("Each is an ordinary `posttrain` command: run it by hand on your own model and data. Every run directory holds");
        sb.AppendLine("`metrics.jsonl`, TensorBoard files, `config.yaml` and the model (or adapter) in Hugging Face layout; each evaluation");
        sb.AppendLine("directory holds lm-eval's `results.json` and `samples_TASK.jsonl`.");
        sb.AppendLine();
        foreach (var stage in stages)
        {
            sb.AppendLine($"### {stage.Name}");
            sb.AppendLine();
            sb.AppendLine("```bash");
            foreach (var c in stage.Commands) sb.AppendLine(c);
            sb.AppendLine("```");
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
