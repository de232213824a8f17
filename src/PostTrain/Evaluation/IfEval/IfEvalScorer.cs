using System.Text.Json;
using System.Text.Json.Nodes;

namespace PostTrain.Evaluation.IfEval;

/// <summary>
/// Verdicts for one IFEval document, as lm-eval's ifeval task computes them: per instruction
/// (inst_level_*_acc) and for the whole prompt (prompt_level_*_acc, true when every instruction is).
/// </summary>
public sealed record IfEvalResult(bool PromptLevelStrict, bool[] InstLevelStrict, bool PromptLevelLoose, bool[] InstLevelLoose);

/// <summary>
/// IFEval scoring as EleutherAI lm-evaluation-harness does it (lm_eval/tasks/ifeval: utils.py,
/// instructions.py, instructions_registry.py, instructions_util.py). Strict: the response follows an
/// instruction when it is not blank and the instruction's check passes. Loose: the same check on eight
/// versions of the response (as is, without its first line, without its last line, without both, and
/// each of those with every '*' removed), passing if any non-blank one passes.
///
/// Where the result can differ from lm-eval: sentence counts after some abbreviations, initials and
/// numbers (<see cref="PunktSentences"/>), and language detection on short, mixed or all-capital text
/// (<see cref="LanguageDetector"/>). Everything else is meant to match exactly, Python string semantics
/// included (<see cref="PyText"/>).
/// </summary>
public static class IfEvalScorer
{
    /// <summary>The instruction ids lm-eval's registry knows.</summary>
    public static IReadOnlyCollection<string> InstructionIds => InstructionRegistry.Ids;

    /// <summary>
    /// Scores <paramref name="response"/> against an IFEval row <c>{"key", "prompt", "instruction_id_list",
    /// "kwargs"}</c>. <paramref name="where"/> names the row in error messages ("data.jsonl:12").
    /// </summary>
    /// <exception cref="InputError">An unknown instruction id, a missing field or a kwarg lm-eval could not use.</exception>
    public static IfEvalResult Score(JsonObject doc, string response, string where)
    {
        var instructions = Build(doc, where);
        var strict = new bool[instructions.Length];
        var loose = new bool[instructions.Length];
        var variants = LooseVariants(response);
        for (int i = 0; i < instructions.Length; i++)
        {
            strict[i] = FollowsStrict(instructions[i], response);
            loose[i] = variants.Any(v => FollowsStrict(instructions[i], v));
        }
        return new IfEvalResult(strict.All(x => x), strict, loose.All(x => x), loose);
    }

    static bool FollowsStrict(Instruction instruction, string response) =>
        PyString.Strip(response).Length > 0 && instruction.Follows(response);

    static string[] LooseVariants(string response)
    {
        var lines = response.Split('\n');
        string Join(int skipFirst, int skipLast) =>
            PyString.Strip(string.Join("\n", lines.Skip(skipFirst).Take(Math.Max(0, lines.Length - skipFirst - skipLast))));
        var removeFirst = Join(1, 0);
        var removeLast = Join(0, 1);
        var removeBoth = Join(1, 1);
        return new[]
        {
            response, response.Replace("*", ""),
            removeFirst, removeLast, removeBoth,
            removeFirst.Replace("*", ""), removeLast.Replace("*", ""), removeBoth.Replace("*", ""),
        };
    }

    static Instruction[] Build(JsonObject doc, string where)
    {
        InputError Error(string field, string message) => new($"{where}: {field}: {message}");

        if (doc["instruction_id_list"] is not JsonArray ids)
            throw Error("instruction_id_list", doc.ContainsKey("instruction_id_list") ? "must be a list of instruction ids" : "missing");
        if (doc["kwargs"] is not JsonArray kwargs)
            throw Error("kwargs", doc.ContainsKey("kwargs") ? "must be a list of objects, one per instruction" : "missing");
        if (doc["prompt"]?.GetValueKind() != JsonValueKind.String)
            throw Error("prompt", doc.ContainsKey("prompt") ? "must be a string" : "missing");
        if (kwargs.Count < ids.Count)
            throw Error("kwargs", $"has {kwargs.Count} entries for {ids.Count} instructions");

        var result = new Instruction[ids.Count];
        for (int i = 0; i < ids.Count; i++)
        {
            if (ids[i]?.GetValueKind() != JsonValueKind.String)
                throw Error($"instruction_id_list[{i}]", "must be a string");
            var id = ids[i]!.GetValue<string>();
            if (!InstructionRegistry.IsKnown(id))
                throw Error($"instruction_id_list[{i}]", $"unknown instruction id \"{id}\"");
            if (kwargs[i] is not JsonObject args)
                throw Error($"kwargs[{i}]", "must be an object");
            result[i] = InstructionRegistry.Build(id, args, where, $"kwargs[{i}]");
        }
        return result;
    }
}
