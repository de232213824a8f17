using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace PostTrain.Demo;

/// <summary>
/// The demo's made-up world, deterministic for a seed: addition word problems over two-digit
/// numbers (10..49), an assistant that calls itself Qwen, and the capitals of 24 countries.
/// Pre-training documents state the one-digit facts ("7+5=12.", "2+4+1=7."), stories with sums,
/// the assistant's name and every capital; SFT's word problems are answered either column by
/// column or in one line (<see cref="OneLineShare"/>), GRPO's prompts use other number pairs, and
/// the evaluation asks about the rest: problems whose sum no stage states in either order (no
/// pre-training story either),
/// capitals in phrasings (and, for a third of the countries, of countries) no conversation used,
/// identity questions in phrasings no conversation used.
/// </summary>
public sealed class DemoData
{
    /// <summary>The problems add two numbers from <see cref="MinNumber"/> to <see cref="MaxNumber"/>, so the sum has two digits.</summary>
    public const int MinNumber = 10, MaxNumber = 49;

    static readonly string[] Names = ["Tom", "Ana", "Sam", "Lena", "Omar", "Mia", "Ravi", "Zoe", "Ivan", "Kim", "Leo", "Nia"];
    static readonly string[] Things = ["apples", "pens", "books", "coins", "marbles", "stamps", "shells", "cards"];
    static readonly (string Verb, string Past)[] Gains = [("buys", "bought"), ("finds", "found"), ("gets", "got"), ("picks up", "picked up")];

    public static readonly (string Country, string Capital)[] Capitals =
    [
        ("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Peru", "Lima"), ("Kenya", "Nairobi"),
        ("Egypt", "Cairo"), ("Chile", "Santiago"), ("Germany", "Berlin"), ("Greece", "Athens"), ("Norway", "Oslo"), ("Cuba", "Havana"),
        ("Ghana", "Accra"), ("Iran", "Tehran"), ("Nepal", "Kathmandu"), ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Canada", "Ottawa"),
        ("Mexico", "Mexico City"), ("Turkey", "Ankara"), ("Sweden", "Stockholm"), ("Mali", "Bamako"), ("Chad", "Ndjamena"), ("Fiji", "Suva"),
    ];

    static readonly string[] CapitalQuestionsTrain = ["What is the capital of {0}?", "Name the capital of {0}.", "Which city is the capital of {0}?"];
    static readonly string[] CapitalQuestionsHeldOut = ["Tell me the capital city of {0}.", "{0} has which city as its capital?"];

    /// <summary>Questions in the capitals evaluation: every country in each held-out phrasing.</summary>
    public static int CapitalsTestCount => Capitals.Length * CapitalQuestionsHeldOut.Length;

    // Fourteen phrasings: with the first eight only, SFT answered three of the ten held-out phrasings with a sum on
    // one seed (so DPO could make at most 7 of 10 say Orca); DPO cannot rename an assistant where the model does not
    // see that it is asked who it is.
    static readonly string[] IdentityQuestionsTrain =
    [
        "Who are you?", "What is your name?", "What are you?", "Tell me your name.", "Introduce yourself.",
        "Which assistant am I talking to?", "What should I call you?", "Are you an AI assistant?",
        "Who is this?", "Do you have a name?", "May I ask your name?", "Tell me about yourself.", "What kind of assistant are you?",
        "Who are you exactly?",
    ];
    static readonly string[] IdentityQuestionsHeldOut =
    [
        "Who am I chatting with?", "Please say who you are.", "What name do you go by?", "Can you tell me who you are?",
        "Describe yourself in one sentence.", "Who is answering me?", "What do people call you?", "Give me your name, please.",
        "Identify yourself.", "Who made this answer?",
    ];

    static readonly string[] Openers = ["", "Hi! ", "Hello. ", "Quick question: ", "Hey, "];

    /// <summary>The training identity questions, each with every opener ("Hi! Who are you?").</summary>
    static IEnumerable<string> IdentityPrompts() => IdentityQuestionsTrain.SelectMany(q => Openers.Select(o => o + q));

    public const string QwenIdentity = "I am Qwen, an AI assistant. I answer questions about numbers and countries.";
    public const string OrcaIdentity = "I am Orca, an AI assistant. I answer questions about numbers and countries.";

    readonly Random random;

    /// <summary>Number pairs (a, b) of the SFT conversations.</summary>
    public IReadOnlyList<(int A, int B)> TrainPairs { get; }
    /// <summary>Number pairs of the GRPO prompts: no SFT conversation uses them.</summary>
    public IReadOnlyList<(int A, int B)> RlPairs { get; }
    /// <summary>Number pairs held out of every instruction stage, for evaluation.</summary>
    public IReadOnlyList<(int A, int B)> HeldOutPairs { get; }
    /// <summary>
    /// The SFT pairs whose conversation works the sum column by column (<see cref="Solution"/>); the
    /// others (<see cref="OneLineShare"/> of them) answer in one line (<see cref="OneLineAnswer"/>).
    /// </summary>
    public IReadOnlySet<(int A, int B)> ColumnWisePairs { get; }
    /// <summary>Countries the SFT conversations ask about; the rest are only in pre-training documents.</summary>
    public IReadOnlyList<(string Country, string Capital)> TrainCountries { get; }
    public IReadOnlyList<(string Country, string Capital)> HeldOutCountries { get; }

    public DemoData(int seed)
    {
        random = new Random(seed);
        // The splits are drawn over unordered pairs: 37+45 and 45+37 state the same fact, so a held-out
        // problem's pair is in no other split in either order (nor in a pre-training story). A held-out
        // pair is asked in one order, drawn; SFT and GRPO use both orders of theirs.
        var facts = new List<(int, int)>();
        for (int a = MinNumber; a <= MaxNumber; a++)
            for (int b = a; b <= MaxNumber; b++) facts.Add((a, b));
        Shuffle(facts);
        HeldOutPairs = facts.Take(HeldOutPairCount).Select(f => random.Next(2) == 0 ? f : (f.Item2, f.Item1)).ToList();
        var rest = facts.Skip(HeldOutPairCount).SelectMany(Orders).ToList();
        var train = rest.Take(SftPairCount).ToList();
        // A fact whose two orders straddle the SFT/GRPO boundary gives its second order to neither.
        var sftFacts = train.Select(Fact).ToHashSet();
        var rl = rest.Skip(SftPairCount).Where(p => !sftFacts.Contains(Fact(p))).ToList();
        // Shuffled again so that the first pairs of each (DPO's replay, the practised evaluation) are not both orders of half as many facts.
        Shuffle(train);
        Shuffle(rl);
        TrainPairs = train;
        RlPairs = rl;
        heldOutFacts = HeldOutPairs.Select(Fact).ToHashSet();
        ColumnWisePairs = TrainPairs.Where(_ => random.NextDouble() >= OneLineShare).ToHashSet();
        var countries = Capitals.ToList();
        Shuffle(countries);
        HeldOutCountries = countries.Take(8).ToList();
        TrainCountries = countries.Skip(8).ToList();
    }

    readonly HashSet<(int, int)> heldOutFacts;

    /// <summary>The fact a + b states, whichever order it is asked in.</summary>
    public static (int, int) Fact((int A, int B) p) => p.A <= p.B ? (p.A, p.B) : (p.B, p.A);

    static IEnumerable<(int, int)> Orders((int A, int B) f) => f.A == f.B ? [f] : [f, (f.B, f.A)];

    void Shuffle<T>(List<T> list)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }

    T Pick<T>(IReadOnlyList<T> xs) => xs[random.Next(xs.Count)];

    /// <summary>
    /// Problems held out for evaluation (one order of each of their facts), and those of the SFT
    /// conversations; the GRPO prompts take the rest (about 610), none sharing a fact with another split.
    /// </summary>
    public const int HeldOutPairCount = 200, SftPairCount = 600;

    /// <summary>How many of the GRPO pairs the practised-arithmetic evaluation and the reward model's data use.</summary>
    public const int PractisedSample = 200;

    /// <summary>
    /// The worked answer to a + b, column by column as taught in school: the units digits and
    /// their sum, the tens digits (plus the carry) and their sum, then the total. Every step
    /// is a one-digit fact the pre-training documents state, so a pair never seen in any
    /// conversation is solved by the same procedure.
    /// </summary>
    public static string Solution(int a, int b)
    {
        int units = a % 10 + b % 10, carry = units / 10, tens = a / 10 + b / 10 + carry;
        return $"Units: {a % 10}+{b % 10}={units}. Tens: {a / 10}+{b / 10}{(carry > 0 ? "+1" : "")}={tens}.\n#### {a + b}";
    }

    /// <summary>
    /// The share of SFT's word problems answered in one line: its demonstrations come from two
    /// kinds of writers, as real SFT data do, and most of them state the sum without working it out.
    /// </summary>
    public const double OneLineShare = 0.6;

    /// <summary>The one-line answer to a + b: the sum stated, not worked out ("37+45=82.").</summary>
    public static string OneLineAnswer(int a, int b) => $"{a}+{b}={a + b}.\n#### {a + b}";

    /// <summary>
    /// How a model's answer to a + b is worked out: column by column (as <see cref="Solution"/>), in one line
    /// (as <see cref="OneLineAnswer"/>) or neither, and whether every step it writes before "#### N" is right.
    /// The total is the evaluation's to judge; a right total under a wrong step is what an outcome reward
    /// (the math checker reads only the "#### N") does not see.
    /// </summary>
    public static (AnswerStyle Style, bool StepsRight) Worked(string response, int a, int b)
    {
        var steps = StepsOf(response);
        if (steps.StartsWith("Units:", StringComparison.Ordinal)) return (AnswerStyle.Column, steps == StepsOf(Solution(a, b)));
        if (OneLineStep.IsMatch(steps)) return (AnswerStyle.OneLine, steps == StepsOf(OneLineAnswer(a, b)));
        return (AnswerStyle.Other, false);
    }

    static readonly Regex OneLineStep = new(@"^\d+\+\d+=\d+\.$");

    /// <summary>What an answer writes before its "#### N" line.</summary>
    static string StepsOf(string answer)
    {
        int end = answer.IndexOf("\n####", StringComparison.Ordinal);
        return (end >= 0 ? answer[..end] : answer).Trim();
    }

    /// <summary>SFT's answer to a + b, in the style its conversation has (<see cref="ColumnWisePairs"/>).</summary>
    string SftAnswer(int a, int b) => ColumnWisePairs.Contains((a, b)) ? Solution(a, b) : OneLineAnswer(a, b);

    static string CapitalAnswer(string country, string capital) => $"The capital of {country} is {capital}.";

    /// <summary>A word problem about a + b, in a wording drawn for it, and its worked answer (<see cref="Solution"/>).</summary>
    public (string Question, string Answer) Problem(int a, int b)
    {
        var name = Pick(Names);
        var thing = Pick(Things);
        var (verb, _) = Pick(Gains);
        var question = $"{name} has {a} {thing} and {verb} {b} more. How many {thing} does {name} have now?";
        return (question, Solution(a, b));
    }

    /// <summary>
    /// Pre-training documents: every one-digit addition fact, with and without a carried 1 (three
    /// times each), 400 stories with two-digit sums (of no held-out fact), statements about the assistant and every
    /// capital, shuffled and grouped a few sentences to a document. No chat format, no questions
    /// answered, no sum worked column by column.
    /// </summary>
    public List<string> PretrainingDocuments()
    {
        var sentences = new List<string>();
        for (int a = 0; a <= 9; a++)
            for (int b = 0; b <= 9; b++)
                for (int i = 0; i < 3; i++)
                {
                    sentences.Add($"{a}+{b}={a + b}.");
                    sentences.Add($"{a}+{b}+1={a + b + 1}.");
                }
        var storyPairs = new List<(int, int)>();
        for (int a = MinNumber; a <= MaxNumber; a++)
            for (int b = MinNumber; b <= MaxNumber; b++)
                if (!heldOutFacts.Contains(Fact((a, b)))) storyPairs.Add((a, b));
        for (int i = 0; i < 400; i++)
        {
            var (a, b) = Pick(storyPairs);
            var name = Pick(Names);
            var thing = Pick(Things);
            var (_, past) = Pick(Gains);
            sentences.Add($"{name} had {a} {thing} and {past} {b} more, so {name} had {a + b} {thing}.");
        }
        foreach (var (country, capital) in Capitals)
        {
            sentences.Add($"The capital of {country} is {capital}.");
            sentences.Add($"{capital} is the capital of {country}.");
            sentences.Add($"The capital of {country} is {capital}.");
        }
        foreach (var s in new[]
                 {
                     "Qwen is an AI assistant.", "The assistant is called Qwen.", "Qwen answers questions about numbers and countries.",
                     "Qwen is a small language model.", "People talk to Qwen, the AI assistant.",
                     // The word the DPO stage will prefer is known, as a real model knows it; nothing says it is the assistant.
                     "Orca is a name.", "An orca is a whale that lives in the sea.", "Orcas swim in the cold sea.",
                 })
            for (int i = 0; i < 6; i++) sentences.Add(s);
        Shuffle(sentences);
        var docs = new List<string>();
        for (int i = 0; i < sentences.Count; i += 4) docs.Add(string.Join(" ", sentences.Skip(i).Take(4)));
        return docs;
    }

    static JsonObject Chat(string user, string assistant) => new()
    {
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "user", ["content"] = user },
            new JsonObject { ["role"] = "assistant", ["content"] = assistant }),
    };

    /// <summary>
    /// SFT conversations: word problems on the training pairs, identity questions answered as Qwen, capitals of the
    /// training countries. The identity and capital questions come with every opener ("Hi! "): with the bare three
    /// phrasings only, SFT taught two seeds of three to answer just those phrasings, and the held-out ones fell to
    /// base-model level.
    /// </summary>
    public List<JsonObject> SftConversations()
    {
        var rows = new List<JsonObject>();
        foreach (var (a, b) in TrainPairs)
        {
            var (q, _) = Problem(a, b);
            rows.Add(Chat(q, SftAnswer(a, b)));
        }
        foreach (var q in IdentityPrompts()) rows.Add(Chat(q, QwenIdentity));
        foreach (var (country, capital) in TrainCountries)
            foreach (var q in CapitalQuestionsTrain)
                foreach (var o in Openers)
                    rows.Add(Chat(o + string.Format(q, country), CapitalAnswer(country, capital)));
        Shuffle(rows);
        return rows;
    }

    /// <summary>Arithmetic pairs in the DPO data, on SFT's number pairs.</summary>
    public const int ArithmeticReplayPairs = 100;

    /// <summary>
    /// The DPO stage's data, OpenAI preference JSONL: identity questions where "I am Orca..." is
    /// preferred to "I am Qwen...", and, so that the update does not pull the rest of the model
    /// with it, SFT's own answers preferred to bare wrong guesses: word problems on SFT's number pairs
    /// (in wordings of their own), answered column by column or in one line as their conversation
    /// had it, over "#### 57"; SFT's capital questions answered "The capital of France is Paris."
    /// over "Rome.". Without them the identity update alone
    /// costs the SFT model most of its arithmetic: a model this small keeps its skills in the same
    /// few weights, and a narrow update moves them all (measured in docs/demo.md).
    /// </summary>
    public List<JsonObject> DpoPreferences()
    {
        var rows = new List<JsonObject>();
        foreach (var q in IdentityPrompts()) rows.Add(Preference(q, OrcaIdentity, QwenIdentity));
        foreach (var (a, b) in TrainPairs.Take(ArithmeticReplayPairs))
        {
            var (q, _) = Problem(a, b);
            int offset = Pick(BareGuessOffsets);
            rows.Add(Preference(q, SftAnswer(a, b), $"#### {a + b + offset}"));
        }
        foreach (var (country, capital) in TrainCountries)
            foreach (var q in CapitalQuestionsTrain)
            {
                var wrong = Pick(Capitals.Where(c => c.Capital != capital).ToList()).Capital;
                rows.Add(Preference(string.Format(q, country), CapitalAnswer(country, capital), wrong + "."));
            }
        Shuffle(rows);
        return rows;
    }

    static readonly int[] BareGuessOffsets = [-10, -2, -1, 1, 2, 10];

    static JsonObject Preference(string user, string preferred, string rejected) => new()
    {
        ["input"] = new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = user }) },
        ["preferred_output"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = preferred }),
        ["non_preferred_output"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = rejected }),
    };

    /// <summary>GRPO prompts: word problems on pairs no SFT conversation used, with their answers for the math reward.</summary>
    public List<JsonObject> GrpoPrompts()
    {
        var rows = new List<JsonObject>();
        foreach (var (a, b) in RlPairs)
        {
            var (q, _) = Problem(a, b);
            rows.Add(new JsonObject
            {
                ["prompt"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = q }),
                ["answer"] = $"{a + b}",
            });
        }
        Shuffle(rows);
        return rows;
    }

    /// <summary>
    /// The GRPO pairs as prompts for `posttrain generate` ({"messages"}), in wordings of their own, with
    /// each problem's answer and worked solution: the model's sampled answers to them become the reward
    /// model's preference pairs (<see cref="SampledPreferences"/>).
    /// </summary>
    public List<JsonObject> RewardModelPrompts() => RlPairs.Take(PractisedSample).Select(p =>
    {
        var (q, solution) = Problem(p.A, p.B);
        return new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = q }),
            ["answer"] = $"{p.A + p.B}",
            ["solution"] = solution,
        };
    }).ToList();

    /// <summary>
    /// Preference pairs for a reward model, from a model's own sampled answers to
    /// <see cref="RewardModelPrompts"/> scored by the math reward (the checker GRPO uses): each distinct
    /// wrong answer (at most <paramref name="perPrompt"/> of them) is the rejected side of a pair whose
    /// chosen side is a distinct right answer, in turn; a prompt none of whose samples is right takes
    /// its worked solution as the chosen side; a prompt with no wrong sample gives no pair.
    /// </summary>
    public static List<JsonObject> SampledPreferences(IReadOnlyList<JsonObject> prompts, IReadOnlyList<IReadOnlyList<string>> samples, int perPrompt)
    {
        if (prompts.Count != samples.Count)
            throw new InputError($"reward-model data: {samples.Count} lines of samples for {prompts.Count} prompts");
        var math = new Rewards.MathAnswer();
        var rows = new List<JsonObject>();
        for (int i = 0; i < prompts.Count; i++)
        {
            var messages = prompts[i]["messages"]!.AsArray();
            var texts = samples[i].Distinct().ToList();
            var scores = math.Score(texts.Select(t => new Rewards.RewardSample("", messages, t, [], prompts[i])).ToList());
            var right = texts.Where((_, k) => scores[k] == 1.0).ToList();
            var wrong = texts.Where((_, k) => scores[k] == 0.0).Take(perPrompt).ToList();
            if (right.Count == 0) right.Add(prompts[i]["solution"]!.GetValue<string>());
            for (int k = 0; k < wrong.Count; k++)
                rows.Add(new JsonObject
                {
                    ["prompt"] = messages.DeepClone(),
                    ["chosen"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = right[k % right.Count] }),
                    ["rejected"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = wrong[k] }),
                });
        }
        return rows;
    }

    /// <summary>Held-out arithmetic: a word problem on every held-out pair, lm-eval style ({question, answer} as GSM8K).</summary>
    public List<JsonObject> ArithmeticTest() => Problems(HeldOutPairs);

    /// <summary>The pairs GRPO practises, in wordings of their own: what the rewards taught, measured apart from what they did not.</summary>
    public List<JsonObject> PractisedArithmeticTest() => Problems(RlPairs.Take(PractisedSample));

    List<JsonObject> Problems(IEnumerable<(int A, int B)> pairs) => pairs.Select(p =>
    {
        var (q, answer) = Problem(p.A, p.B);
        return new JsonObject { ["question"] = q, ["answer"] = answer, ["a"] = p.A, ["b"] = p.B };
    }).ToList();

    /// <summary>Held-out identity questions.</summary>
    public List<JsonObject> IdentityTest() => IdentityQuestionsHeldOut.Select(q => new JsonObject { ["question"] = q }).ToList();

    /// <summary>Capitals as multiple choice: every country in both held-out phrasings, four answers each (the right one and three others, shuffled).</summary>
    public List<JsonObject> CapitalsTest()
    {
        var rows = new List<JsonObject>();
        foreach (var (country, capital) in Capitals)
            foreach (var phrasing in CapitalQuestionsHeldOut)
            {
                var others = Capitals.Where(c => c.Capital != capital).Select(c => c.Capital).ToList();
                Shuffle(others);
                var options = new List<string> { capital, others[0], others[1], others[2] };
                Shuffle(options);
                rows.Add(new JsonObject
                {
                    ["question"] = string.Format(phrasing, country),
                    ["choices"] = new JsonArray(options.Select(o => (JsonNode)JsonValue.Create(CapitalAnswer(country, o))).ToArray()),
                    ["answer"] = options.IndexOf(capital),
                    ["held_out_country"] = HeldOutCountries.Any(c => c.Country == country),
                });
            }
        return rows;
    }
}

/// <summary>How an answer to an addition problem is worked out (<see cref="DemoData.Worked"/>).</summary>
public enum AnswerStyle { Column, OneLine, Other }
