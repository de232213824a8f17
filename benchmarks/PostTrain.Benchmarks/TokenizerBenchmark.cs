using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using PostTrain.Tokenization;

namespace PostTrain.Benchmarks;

/// <summary>
/// Encode throughput (MB of UTF-8 per second, one thread) of <see cref="HfTokenizer"/> for qwen3
/// and llama3 on a ~16 MB mixed text (prose, code, numbers, CJK, other scripts, emoji). The text
/// is written to a file so tests/reference/tokenizer_bench.mjs can time Hugging Face tokenizers
/// on exactly the same 4 KB chunks (a chunk never ends inside a surrogate pair).
/// Options: --mb N (text size, default 16), --text-out PATH, --passes N (default 3).
/// </summary>
public sealed class TokenizerBenchmark : IBenchmark
{
    public string Name => "tokenizer";
    public string Description => "HfTokenizer encode MB/s on ~16 MB of mixed text (qwen3, llama3)";
    public const int ChunkChars = 4096;

    public JsonObject Run(string[] args)
    {
        int mb = 16, passes = 3;
        string textOut = Path.Combine(Path.GetTempPath(), "posttrain-tokenizer-bench.txt");
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--mb": mb = int.Parse(args[++i]); break;
                case "--text-out": textOut = args[++i]; break;
                case "--passes": passes = int.Parse(args[++i]); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        var text = BuildText(mb * 1_000_000);
        File.WriteAllText(textOut, text, new UTF8Encoding(false));
        var chunks = Chunk(text);
        long bytes = Encoding.UTF8.GetByteCount(text);

        var result = new JsonObject
        {
            ["text_file"] = textOut,
            ["text_mb"] = Math.Round(bytes / 1e6, 2),
            ["chunks"] = chunks.Count,
            ["chunk_chars"] = ChunkChars,
            ["threads"] = 1,
        };
        foreach (var model in new[] { "qwen3", "llama3" })
        {
            var dir = Unpack(model);
            var load = Stopwatch.StartNew();
            var tok = HfTokenizer.FromDirectory(dir);
            double loadS = load.Elapsed.TotalSeconds;

            // Cold: a fresh tokenizer's first pass (empty BPE cache, JIT included).
            var cold = HfTokenizer.FromDirectory(dir);
            var coldSw = Stopwatch.StartNew();
            foreach (var c in chunks) cold.Encode(c);
            double coldS = coldSw.Elapsed.TotalSeconds;

            // Warm-up: JIT and the BPE cache on the first ~1 MB.
            for (int i = 0; i < Math.Min(chunks.Count, 250); i++) tok.Encode(chunks[i]);
            var times = new List<double>();
            long tokens = 0;
            for (int p = 0; p < passes; p++)
            {
                tokens = 0;
                var sw = Stopwatch.StartNew();
                foreach (var c in chunks) tokens += tok.Encode(c).Length;
                times.Add(sw.Elapsed.TotalSeconds);
            }
            times.Sort();
            result[model] = new JsonObject
            {
                ["load_s"] = Math.Round(loadS, 3),
                ["tokens"] = tokens,
                ["best_s"] = Math.Round(times[0], 3),
                ["median_s"] = Math.Round(times[times.Count / 2], 3),
                ["mb_per_s_best"] = Math.Round(bytes / 1e6 / times[0], 2),
                ["mb_per_s_median"] = Math.Round(bytes / 1e6 / times[times.Count / 2], 2),
                ["cold_first_pass_s"] = Math.Round(coldS, 3),
                ["mb_per_s_cold_first_pass"] = Math.Round(bytes / 1e6 / coldS, 2),
            };
        }
        return result;
    }

    /// <summary>A fixture tokenizer (qwen3, llama3) unpacked into a temporary directory: tokenizer.json and tokenizer_config.json.</summary>
    internal static string Unpack(string model)
    {
        var fixtures = FindFixtures();
        var dir = Path.Combine(Path.GetTempPath(), "posttrain-bench-" + model);
        Directory.CreateDirectory(dir);
        using (var gz = new GZipStream(File.OpenRead(Path.Combine(fixtures, model, "tokenizer.json.gz")), CompressionMode.Decompress))
        using (var f = File.Create(Path.Combine(dir, "tokenizer.json")))
            gz.CopyTo(f);
        File.Copy(Path.Combine(fixtures, model, "tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"), overwrite: true);
        return dir;
    }

    static string FindFixtures()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var f = Path.Combine(d.FullName, "tests", "PostTrain.Tests", "Fixtures", "tokenizers");
            if (Directory.Exists(f)) return f;
        }
        throw new DirectoryNotFoundException("tests/PostTrain.Tests/Fixtures/tokenizers not found above " + AppContext.BaseDirectory);
    }

    /// <summary>4096-char chunks; a chunk that would end between a surrogate pair ends one char earlier.</summary>
    public static List<string> Chunk(string text)
    {
        var chunks = new List<string>(text.Length / ChunkChars + 1);
        for (int i = 0; i < text.Length;)
        {
            int end = Math.Min(i + ChunkChars, text.Length);
            if (end < text.Length && char.IsHighSurrogate(text[end - 1])) end--;
            chunks.Add(text[i..end]);
            i = end;
        }
        return chunks;
    }

    /// <summary>Deterministic mixed text with many distinct words (Zipf-distributed), so the BPE cache sees misses too.</summary>
    public static string BuildText(int targetBytes)
    {
        var rnd = new Random(12345);
        string[] syll = ["ka", "to", "ri", "en", "ster", "ing", "tion", "pre", "con", "al", "ver", "mo", "la", "qu", "ex", "ph", "th", "ou", "ght", "str", "ab", "le", "ness", "ful", "un", "re", "de", "sh", "ch", "y"];
        string[] common = ["the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "model", "training", "token", "data", "learning"];
        string[] code =
        [
            "def forward(self, x: torch.Tensor) -> torch.Tensor:\n    h = self.norm(x)\n    return x + self.mlp(h)\n",
            "for (int i = 0; i < n; i++) {\n\tsum += values[i] * weights[i];\n}\n",
            "const result = await fetch(`${baseUrl}/api/v1/items?id=${id}`);\nif (!result.ok) throw new Error(result.statusText);\n",
            "fn main() {\n    let v: Vec<u32> = (0..100).filter(|x| x % 3 == 0).collect();\n    println!(\"{:?}\", v);\n}\n",
            "SELECT u.id, COUNT(*) AS n FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.id HAVING n > 10;\n",
            "    if (err != nil) {\n        return fmt.Errorf(\"open %s: %w\", path, err)\n    }\n",
        ];
        string cjk = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坐集编宝谈府拉黑且随格尽剑讲布杀微怕母调局根曾准团段终乐切级克精哪官示冷域读";
        string kana = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテト";
        string hangul = "가나다라마바사아자차카타파하국어한글텍스트입니다안녕하세요감사합니다";
        string[] other = ["مرحبا بالعالم", "नमस्ते दुनिया", "Привет мир", "Ελληνικά", "café naïve résumé", "Ångström", "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵", "𝐀𝑥", "𠀀", "≥ ≤ ≠ ∑ ∫", "—", "“quoted”", "…"];

        // A 30k-word lexicon drawn with a Zipf distribution, like natural text (a few words very
        // common, a long tail of rare ones).
        var lexicon = new string[30_000];
        for (int i = 0; i < lexicon.Length; i++)
        {
            var wb = new StringBuilder();
            int n = 1 + rnd.Next(4);
            for (int k = 0; k < n; k++) wb.Append(syll[rnd.Next(syll.Length)]);
            lexicon[i] = wb.ToString();
        }
        var cdf = new double[lexicon.Length];
        double acc = 0;
        for (int i = 0; i < cdf.Length; i++) cdf[i] = acc += 1.0 / (i + 1);
        string Zipf()
        {
            int idx = Array.BinarySearch(cdf, rnd.NextDouble() * acc);
            return lexicon[idx < 0 ? Math.Min(~idx, lexicon.Length - 1) : idx];
        }

        var sb = new StringBuilder(targetBytes);
        long bytes = 0;
        while (bytes < targetBytes)
        {
            var para = new StringBuilder();
            int kind = rnd.Next(10);
            if (kind < 5)
            {
                int words = 20 + rnd.Next(80);
                for (int w = 0; w < words; w++)
                {
                    if (w > 0) para.Append(rnd.Next(12) == 0 ? ", " : " ");
                    string word;
                    int r = rnd.Next(10);
                    if (r < 6) word = common[rnd.Next(common.Length)];
                    else if (r < 9) word = Zipf();
                    else word = rnd.Next(4) switch { 0 => rnd.Next(100000).ToString(), 1 => $"{rnd.Next(100)}.{rnd.Next(1000)}", 2 => "it's", _ => "don't" };
                    if (w == 0 || rnd.Next(15) == 0) word = char.ToUpperInvariant(word[0]) + word[1..];
                    para.Append(word);
                }
                para.Append(". ");
                if (rnd.Next(3) == 0) para.Append(other[rnd.Next(other.Length)]).Append(' ');
                para.Append('\n');
            }
            else if (kind < 7) para.Append(code[rnd.Next(code.Length)]).Append(rnd.Next(2) == 0 ? "\n" : "\r\n\n");
            else if (kind < 9)
            {
                string pool = rnd.Next(3) switch { 0 => cjk, 1 => kana, _ => hangul };
                int n = 20 + rnd.Next(100);
                for (int k = 0; k < n; k++)
                {
                    para.Append(pool[rnd.Next(pool.Length)]);
                    if (rnd.Next(15) == 0) para.Append(rnd.Next(2) == 0 ? "，" : "。");
                    if (pool == hangul && rnd.Next(4) == 0) para.Append(' ');
                }
                para.Append('\n');
            }
            else
            {
                int n = 5 + rnd.Next(20);
                for (int k = 0; k < n; k++) para.Append(other[rnd.Next(other.Length)]).Append(rnd.Next(3) == 0 ? "  " : " ");
                para.Append("\n\t\n");
            }
            var p = para.ToString();
            sb.Append(p);
            bytes += Encoding.UTF8.GetByteCount(p);
        }
        return sb.ToString();
    }
}
