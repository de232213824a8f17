using System.Text.Json.Nodes;

namespace PostTrain.Demo;

/// <summary>
/// The demo's made-up world, deterministic for a seed: addition word problems over numbers
/// 1..20, an assistant that calls itself Qwen, and the capitals of 24 countries. Pre-training
/// documents state facts ("3 plus 4 is 7.", "The capital of France is Paris.") about every
/// number pair and country; the instruction data uses only some of them (SFT and GRPO different
/// number pairs), and the evaluation asks about the rest: problems whose number pair no
/// instruction stage used, capitals in phrasings (and, for a third of the countries, of
/// countries) no conversation used, identity questions in phrasings no conversation used.
/// </summary>
public sealed class DemoData
{
    public const int MaxNumber = 20;

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

    static readonly string[] IdentityQuestionsTrain =
    [
        "Who are you?", "What is your name?", "What are you?", "Tell me your name.", "Introduce yourself.",
        "Which assistant am I talking to?", "What should I call you?", "Are you an AI assistant?",
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
    /// <summary>Countries the SFT conversations ask about; the rest are only in pre-training documents.</summary>
    public IReadOnlyList<(string Country, string Capital)> TrainCountries { get; }
    public IReadOnlyList<(string Country, string Capital)> HeldOutCountries { get; }

    public DemoData(int seed)
    {
        random = new Random(seed);
        var pairs = new List<(int, int)>();
        for (int a = 1; a <= MaxNumber; a++)
            for (int b = 1; b <= MaxNumber; b++) pairs.Add((a, b));
        Shuffle(pairs);
        HeldOutPairs = pairs.Take(80).ToList();
        RlPairs = pairs.Skip(80).Take(120).ToList();
        TrainPairs = pairs.Skip(200).ToList();
        var countries = Capitals.ToList();
        Shuffle(countries);
        HeldOutCountries = countries.Take(8).ToList();
        TrainCountries = countries.Skip(8).ToList();
    }

    void Shuffle<T>(List<T> list)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }

    T Pick<T>(IReadOnlyList<T> xs) => xs[random.Next(xs.Count)];

    /// <summary>A word problem about a + b, and its answer: a short chain ending in "#### N".</summary>
    public (string Question, string Answer) Problem(int a, int b)
    {
        var name = Pick(Names);
        var thing = Pick(Things);
        var (verb, _) = Pick(Gains);
        var question = $"{name} has {a} {thing} and {verb} {b} more. How many {thing} does {name} have now?";
        return (question, $"{a} plus {b} is {a + b}.\n#### {a + b}");
    }

    /// <summary>
    /// Pre-training documents: every addition fact (twice, in two phrasings), word-problem
    /// stories with their sums, statements about the assistant and every capital, shuffled and
    /// grouped a few sentences to a document. No chat format, no questions answered.
    /// </summary>
    public List<string> PretrainingDocuments()
    {
        var sentences = new List<string>();
        for (int a = 1; a <= MaxNumber; a++)
            for (int b = 1; b <= MaxNumber; b++)
            {
                sentences.Add($"{a} plus {b} is {a + b}.");
                sentences.Add($"{a} and {b} make {a + b}.");
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

    /// <summary>SFT conversations: word problems on the training pairs, identity questions answered as Qwen, capitals of the training countries.</summary>
    public List<JsonObject> SftConversations()
    {
        var rows = new List<JsonObject>();
        foreach (var (a, b) in TrainPairs)
        {
            var (q, answer) = Problem(a, b);
            rows.Add(Chat(q, answer));
        }
        foreach (var q in IdentityPrompts()) rows.Add(Chat(q, QwenIdentity));
        foreach (var (country, capital) in TrainCountries)
            foreach (var q in CapitalQuestionsTrain)
                rows.Add(Chat(string.Format(q, country), $"The capital of {country} is {capital}."));
        Shuffle(rows);
        return rows;
    }

    /// <summary>OpenAI preference JSONL: identity questions where "I am Orca..." is preferred to "I am Qwen...".</summary>
    public List<JsonObject> IdentityPreferences()
    {
        var rows = new List<JsonObject>();
        foreach (var q in IdentityPrompts())
                rows.Add(new JsonObject
                {
                    ["input"] = new JsonObject { ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = q }) },
                    ["preferred_output"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = OrcaIdentity }),
                    ["non_preferred_output"] = new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = QwenIdentity }),
                });
        Shuffle(rows);
        return rows;
    }

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
    public List<JsonObject> RewardModelPrompts() => RlPairs.Select(p =>
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
    public List<JsonObject> PractisedArithmeticTest() => Problems(RlPairs);

    List<JsonObject> Problems(IEnumerable<(int A, int B)> pairs) => pairs.Select(p =>
    {
        var (q, answer) = Problem(p.A, p.B);
        return new JsonObject { ["question"] = q, ["answer"] = answer };
    }).ToList();

    /// <summary>Held-out identity questions.</summary>
    public List<JsonObject> IdentityTest() => IdentityQuestionsHeldOut.Select(q => new JsonObject { ["question"] = q }).ToList();

    /// <summary>Capitals as multiple choice: held-out phrasings about every country, four answers each (the right one first in the pool, then shuffled).</summary>
    public List<JsonObject> CapitalsTest()
    {
        var rows = new List<JsonObject>();
        foreach (var (country, capital) in Capitals)
        {
            var others = Capitals.Where(c => c.Capital != capital).Select(c => c.Capital).ToList();
            Shuffle(others);
            var options = new List<string> { capital, others[0], others[1], others[2] };
            Shuffle(options);
            rows.Add(new JsonObject
            {
                ["question"] = string.Format(Pick(CapitalQuestionsHeldOut), country),
                ["choices"] = new JsonArray(options.Select(o => (JsonNode)JsonValue.Create($"The capital of {country} is {o}.")).ToArray()),
                ["answer"] = options.IndexOf(capital),
                ["held_out_country"] = HeldOutCountries.Any(c => c.Country == country),
            });
        }
        return rows;
    }
}
