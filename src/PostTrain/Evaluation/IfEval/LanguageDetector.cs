using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PostTrain.Evaluation.IfEval;

/// <summary>
/// Stands in for the Python <c>langdetect</c> package, which lm-eval calls for
/// language:response_language and change_case:english_capital/english_lowercase. langdetect is a
/// naive-Bayes model over character 1-3-grams of 55 languages, sampled at random (lm-eval sets no seed,
/// so on unclear text its answer can change from run to run); it is not reproduced here. This detector
/// returns the same ISO codes and agrees with langdetect on clear text: a sentence or more written in
/// one language. How it decides:
/// <list type="bullet">
/// <item>URLs and e-mail addresses are removed (as langdetect does), and Latin letters are dropped when
/// other letters outnumber them two to one (as langdetect does).</item>
/// <item>The script with the most letters decides for Greek (el), Hebrew (he), Thai (th), Hangul (ko),
/// Bengali (bn), Gurmukhi (pa), Gujarati (gu), Tamil (ta), Telugu (te), Kannada (kn), Malayalam (ml); Han
/// and kana give ja when kana make up 5% or more, else zh-tw or zh-cn by a few traditional/simplified
/// forms.</item>
/// <item>Within Latin (31 languages), Cyrillic (ru, uk, bg, mk), Arabic (ar, fa, ur) and Devanagari (hi, mr,
/// ne) script, frequent function words and letters only one language uses are counted; Latin text with
/// no evidence at all is taken as English.</item>
/// <item>No letters of these scripts at all: null, where langdetect raises "No features in text" (lm-eval
/// then counts the instruction as followed).</item>
/// </list>
/// Where it can differ from langdetect: very short texts (langdetect calls "HELLO WORLD" Somali), all-capital
/// text (langdetect ignores the inner letters of all-capital words, so it is less sure than this detector),
/// texts that mix languages or scripts, and languages of a shared script that this detector only weighs by
/// function words (e.g. Dutch against Afrikaans, Norwegian against Danish). Languages langdetect does not
/// know are reported as one it does, as langdetect would.
/// </summary>
internal static class LanguageDetector
{
    static readonly Regex Url = new(@"https?://[-_.?&~;+=/#0-9A-Za-z]{1,2076}", RegexOptions.CultureInvariant);
    static readonly Regex Mail = new(@"[-_.0-9A-Za-z]{1,64}@[-_0-9A-Za-z]{1,255}[-_.0-9A-Za-z]{1,255}", RegexOptions.CultureInvariant);

    enum Script { None, Latin, Greek, Cyrillic, Hebrew, Arabic, Devanagari, Bengali, Gurmukhi, Gujarati, Tamil, Telugu, Kannada, Malayalam, Thai, Hangul, Kana, Han }

    static Script ScriptOf(int c) => c switch
    {
        >= 'A' and <= 'Z' or >= 'a' and <= 'z' => Script.Latin,
        >= 0xC0 and <= 0x24F and not (0xD7 or 0xF7) => Script.Latin,
        >= 0x1E00 and <= 0x1EFF => Script.Latin,
        >= 0x370 and <= 0x3FF or >= 0x1F00 and <= 0x1FFF => Script.Greek,
        >= 0x400 and <= 0x52F => Script.Cyrillic,
        >= 0x590 and <= 0x5FF => Script.Hebrew,
        >= 0x600 and <= 0x6FF or >= 0x750 and <= 0x77F or >= 0xFB50 and <= 0xFDFF or >= 0xFE70 and <= 0xFEFF => Script.Arabic,
        >= 0x900 and <= 0x97F => Script.Devanagari,
        >= 0x980 and <= 0x9FF => Script.Bengali,
        >= 0xA00 and <= 0xA7F => Script.Gurmukhi,
        >= 0xA80 and <= 0xAFF => Script.Gujarati,
        >= 0xB80 and <= 0xBFF => Script.Tamil,
        >= 0xC00 and <= 0xC7F => Script.Telugu,
        >= 0xC80 and <= 0xCFF => Script.Kannada,
        >= 0xD00 and <= 0xD7F => Script.Malayalam,
        >= 0xE00 and <= 0xE7F => Script.Thai,
        >= 0x1100 and <= 0x11FF or >= 0x3130 and <= 0x318F or >= 0xAC00 and <= 0xD7AF => Script.Hangul,
        >= 0x3040 and <= 0x30FF or >= 0x31F0 and <= 0x31FF or >= 0xFF66 and <= 0xFF9F => Script.Kana,
        >= 0x3400 and <= 0x4DBF or >= 0x4E00 and <= 0x9FFF or >= 0xF900 and <= 0xFAFF or >= 0x20000 and <= 0x3FFFF => Script.Han,
        _ => Script.None,
    };

    static readonly Dictionary<Script, string> SingleLanguage = new()
    {
        [Script.Greek] = "el", [Script.Hebrew] = "he", [Script.Thai] = "th", [Script.Hangul] = "ko",
        [Script.Bengali] = "bn", [Script.Gurmukhi] = "pa", [Script.Gujarati] = "gu", [Script.Tamil] = "ta",
        [Script.Telugu] = "te", [Script.Kannada] = "kn", [Script.Malayalam] = "ml",
    };

    /// <summary>A langdetect language code, or null when the text has no letters to go by.</summary>
    public static string? Detect(string text)
    {
        text = Mail.Replace(Url.Replace(text, " "), " ");
        int asciiLatin = 0, nonLatin = 0;
        foreach (var r in text.EnumerateRunes())
        {
            if (r.Value >= 'A' && r.Value <= 'z') asciiLatin++;
            else if (r.Value >= 0x300 && !(r.Value >= 0x1E00 && r.Value <= 0x1EFF)) nonLatin++;
        }
        bool dropLatin = asciiLatin * 2 < nonLatin;

        var counts = new Dictionary<Script, int>();
        foreach (var r in text.EnumerateRunes())
        {
            if (!Rune.IsLetter(r)) continue;
            var s = ScriptOf(r.Value);
            if (s == Script.None || (dropLatin && s == Script.Latin && r.Value <= 'z')) continue;
            counts[s] = counts.GetValueOrDefault(s) + 1;
        }
        int kana = counts.GetValueOrDefault(Script.Kana), han = counts.GetValueOrDefault(Script.Han);
        if (kana + han > 0)
        {
            counts.Remove(Script.Kana);
            counts[Script.Han] = kana + han;
        }
        if (counts.Count == 0) return null;
        var script = counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key).First().Key;

        if (SingleLanguage.TryGetValue(script, out var code)) return code;
        return script switch
        {
            Script.Han => kana * 20 >= kana + han ? "ja" : Chinese(text),
            Script.Latin => Vote(text, LatinLanguages, "en"),
            Script.Cyrillic => Vote(text, CyrillicLanguages, "ru"),
            Script.Arabic => Vote(text, ArabicLanguages, "ar"),
            Script.Devanagari => Vote(text, DevanagariLanguages, "hi"),
            _ => null,
        };
    }

    const string Traditional = "這個們來時會說國對學為與後開關長問見現經發點過還機實樣種動當進體應將從書車東門間給讓認議語題灣電話業義聽寫讀麼嗎兒愛氣歡樂謝請買賣錢鐘級";
    const string Simplified = "这个们来时会说国对学为与后开关长问见现经发点过还机实样种动当进体应将从书车东门间给让认议语题湾电话业义听写读么吗儿爱气欢乐谢请买卖钱钟级";

    static string Chinese(string text)
    {
        int trad = 0, simp = 0;
        foreach (char c in text)
        {
            if (Traditional.Contains(c)) trad++;
            else if (Simplified.Contains(c)) simp++;
        }
        return trad > simp ? "zh-tw" : "zh-cn";
    }

    sealed record Language(string Code, HashSet<string> Words, string Letters);

    static Language L(string code, string words, string letters = "") =>
        new(code, words.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(), letters);

    // Function words and, after them, letters that point to the language. The first language wins a tie.
    static readonly Language[] LatinLanguages =
    {
        L("en", "the and of to a in is it you that he was for on are with as i his they be at one have this from or had by but not what all were we when your can there an which their if do will my would so these me has been more also our them its about how into than only very just some could who because should"),
        L("es", "el la de que y en los las del se por un una con no es para al lo como más pero sus su le ya o este sí porque esta entre cuando muy sin sobre también me hasta hay donde quien desde todo nos durante todos uno les ni contra otros ese eso ante ellos esto antes algunos qué unos yo otro otras otra él tanto esa estos mucho nada muchos cual poco ella estar estas algo nosotros son está están fue ser tiene puede usted", "ñ¿¡"),
        L("pt", "o a os as de do da dos das e que em no na nos nas um uma para com não por mais se como mas ao ele ela seu sua ou quando muito já também só pelo pela até isso entre depois sem mesmo aos seus quem me esse eles você essa num nem suas meu às minha numa pelos elas qual nós lhe deles essas esses pelas este dele tu te vocês é são foi ser está tem pode", "ãõ"),
        L("fr", "le la les de des du et en un une est que qui dans pour pas sur au aux avec ce ces il elle ils nous vous je ne se sont par plus mais ou son sa ses leur cette été être avoir a sans comme aussi très tout on y était fait même entre dont", "œ"),
        L("de", "der die das und ist nicht ein eine einen einem einer zu den dem des von mit sich auf für im in es ich sie er wir ihr auch als an aus bei nach wie oder aber wenn noch nur so war sind wird werden hat haben dass kann diese dieser vom zum zur über durch man um", "ß"),
        L("it", "il lo la i gli le di del della dei delle e è che un una uno in per non con si da sono al alla come più ma anche questo questa nel nella o se ha ci mi ti cosa molto tutto essere sei sulla degli dal dalla quando perché loro lui lei io tu noi voi"),
        L("nl", "de het een en van is dat op te in niet zijn voor met die aan er ook als bij maar om door naar dan wat nog wel geen ik je hij zij we ze was hebben heeft worden wordt over uit tot kan dit deze", "ĳ"),
        L("pl", "i w z na się nie do to że jest o a jak ale po co tak za od jego jej oraz przez dla tylko być są czy już może który która które by ten ta te tym jako także lub gdy ich bardzo mnie jestem został", "łąęśźżńć"),
        L("vi", "và là của có không một được cho này những các trong với người đã để khi thì cũng như đến từ về rất bạn tôi nhưng hoặc nó sẽ ra vào làm nhiều bằng", "đươăạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ"),
        L("sw", "na ya wa kwa ni za katika la cha vya hii huu hiyo kuwa kama lakini pia au sana mimi wewe yeye sisi wao hapa hapo wakati kila moja bila baada kabla ili kwamba yako yangu yake hili hizi ambayo ambao"),
        L("fi", "ja on ei se että oli ovat olla hän ne me te he mutta tai kun jos niin kuin myös vain joka jotka mikä tämä tämän nämä siitä sen sitä hänen minä sinä olen olet ole mitä kanssa koska jo vielä kaikki paljon nyt sitten"),
        L("sv", "och i att det som en på är av för med till den har de inte om ett han men var jag sig från vi så kan man när hon under också efter eller nu sin där vid mot ska skulle kommer ut får finns vara hade alla andra mycket än här då sedan över bara in blir upp även vad hur mer detta utan något varit dig mig du"),
        L("no", "og i det er som en på å av for med til den har de ikke om et han men var jeg seg fra vi så kan man når hun også etter eller nå sin der ved mot skal skulle kommer ut får være hadde alle andre mye enn her da siden over bare inn blir opp hva hvordan mer dette uten noe vært deg meg du hvor hvis fordi kunne ble"),
        L("da", "og i at det er som en på af for med til den har de ikke om et han men var jeg sig fra vi så kan man når hun også efter eller nu sin der ved mod skal skulle kommer ud får være havde alle andre meget end her da siden over bare ind bliver op hvad hvordan mere dette uden noget været dig mig du hvor hvis fordi kunne blev"),
        L("ca", "el la els les de del dels i que a en un una per amb no és es són al als com més però seu seva o si ja aquest aquesta quan molt també fins sense entre jo tu ell ella nosaltres vosaltres ells elles hi ho li em et ens us", "·"),
        L("ro", "și în de la a cu pe nu este că o un din pentru se care mai sau dar ce sunt fost al ai ale lui ei lor acest această fi are au am foarte când dacă cum după prin doar eu tu el ea noi voi ele vă ne", "șțăî"),
        L("cs", "a je se v na to že s z do o k i ve jsem jsou by ale jak tak pro od po jeho její který která které být byl byla bylo není už jen také nebo když co až při za mezi aby ještě tento tato toto", "řěů"),
        L("sk", "a je sa v na to že s z do o k i vo som sú by ale ako tak pre od po jeho jej ktorý ktorá ktoré byť bol bola bolo nie už len tiež alebo keď čo až pri za medzi aby ešte tento táto toto", "ľĺŕô"),
        L("sl", "in je v na da se za z s so ki ne pa to tudi od po bi kot ali pri do ter sem smo ste bil bila bilo še lahko samo tako zelo kaj kako ko če vendar"),
        L("hr", "i je u na da se za s su ne od to koji koja koje kao a o iz što ali bi sam smo ste bio bila bilo još samo tako vrlo kako kada ako jer ili nije ima biti može prema kod nakon", "đ"),
        L("hu", "a az és hogy nem is egy van volt meg de ez csak már mint el ki be fel le még vagy sem lesz lett kell sok nagyon én te ő mi ti ők azt ezt mert ha amikor minden után között szerint", "őű"),
        L("tr", "ve bir bu da de için ile çok ne o ama gibi daha en var yok olarak olan kadar sonra ben sen biz siz onlar mi mı mu mü her şey değil ki veya ya şu bunu bunun olduğu nasıl neden", "ğşı"),
        L("id", "dan yang di ke dari ini itu untuk dengan tidak ada akan pada juga saya anda kami kita mereka dia adalah dalam atau sudah bisa oleh karena sebagai lebih telah jika tetapi hanya sangat belum harus masih"),
        L("tl", "ang ng sa na mga at ay si ni ko mo ka ako siya kami tayo sila ito iyan iyon hindi oo para kung pero lang din rin po ba naman kanyang akin"),
        L("af", "die en van is in het nie wat vir 'n op met te om sy hy ek jy ons hulle dit word was aan as maar ook deur by sal kan moet dat na uit baie al so"),
        L("cy", "y yr a ac i o yn ar mae ei am gan fel hefyd wedi bod ond neu oedd nid dim hyn hwn hon gyda eu ein fy dy ni chi nhw fe mi", "ŵŷ"),
        L("et", "ja on ei et see oli ka kui aga ta mis nii ma sa me te nad oma või siis veel ainult kõik seda selle need kes mida olen oled oleme pole juba väga nagu koos", "õ"),
        L("lt", "ir kad yra į su iš ne jis ji tai kaip bet o ar buvo bus taip jo jos mano tavo mes jūs jie apie per už prie nuo dėl tik jau dar labai kuris kuri kurie šis ši", "ėįųū"),
        L("lv", "un ir ka no uz ar par kas ne tas tā bet arī vai bija būs to ko viņš viņa es tu mēs jūs viņi savu kā pie pēc tikai jau vēl ļoti kur kad šis šī lai nav", "āēīūļņģķ"),
        L("sq", "dhe në të i e një për me që nga është janë nuk si por ose ka kanë u do ky kjo këtë atë ai ajo ata ato unë ti ne ju më shumë edhe pas para mbi deri kur nëse", "ë"),
        L("so", "iyo ka in waa oo u la ee ku ah aan uu ay wax lagu ayaa kale sida laakiin ama haddii markii waxaa qof dad aad isaga iyada anigu adiga"),
    };

    static readonly Language[] CyrillicLanguages =
    {
        L("ru", "и в не на что я с он как это по но они к у же вы за бы от из мы так для она был была было его ее её только или уже если очень который которая также", "ыэё"),
        L("uk", "і в у на не що це з та до як для від він вона ми ви вони його її але або так також бути є був була дуже тому який яка які", "іїєґ"),
        L("bg", "и в на не да е се за от че с по са това като но или той тя те ние вие аз ти му ги бъде беше много при след към със във който която които", "ъ"),
        L("mk", "и во на не да е се за од дека со по тоа како но или тој таа тие ние вие јас ти му ги биде беше многу при кон", "ѓќљњџѕј"),
    };

    static readonly Language[] ArabicLanguages =
    {
        L("ar", "في من على إلى أن عن مع هذا هذه التي الذي كان ما لا هو هي و أو ثم كل قد بين ذلك عند لم لن", "ةىيك"),
        L("fa", "و در به از که این را با است برای آن یک خود تا کرد بر هم نیز شده می شود ما شما او آنها بود های", "پچژگ"),
        L("ur", "کے کی کا میں ہے ہیں اور سے کو یہ وہ پر نے کہ ایک تھا تھی بھی لیے آپ ہم", "ٹڈڑںےھہ"),
    };

    static readonly Language[] DevanagariLanguages =
    {
        L("hi", "है हैं के की का में और से को यह पर था थी नहीं भी एक लिए हो कि जो तो गया गई कर ने वह आप हम मैं तरह"),
        L("mr", "आहे आहेत आणि या हे ते की नाही मध्ये ला चा ची चे होते होता आम्ही तुम्ही मी त्या त्याच्या म्हणून पण केले करून काही सर्व", "ळ"),
        L("ne", "छ छन् र को मा हो यो पनि गर्न भएको लागि तर थियो गरेको हुन्छ त्यो हामी तपाईं म एक कि नै भने रूपमा छु"),
    };

    static string Vote(string text, Language[] languages, string fallback)
    {
        var lower = PyString.Lower(text);
        var words = new List<string>();
        var sb = new StringBuilder();
        foreach (var r in lower.EnumerateRunes())
        {
            var cat = Rune.GetUnicodeCategory(r);
            bool inWord = Rune.IsLetter(r) || cat is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
                || r.Value is '\'' or 0x200C or 0x200D;
            if (inWord) sb.Append(r.ToString());
            else if (sb.Length > 0) { words.Add(sb.ToString()); sb.Clear(); }
        }
        if (sb.Length > 0) words.Add(sb.ToString());

        string best = fallback;
        double bestScore = 0;
        foreach (var lang in languages)
        {
            double score = 0;
            foreach (var w in words) if (lang.Words.Contains(w) || lang.Words.Contains(w.Trim('\''))) score++;
            foreach (char c in lower) if (lang.Letters.Contains(c)) score += 0.5;
            if (score > bestScore) { best = lang.Code; bestScore = score; }
        }
        return best;
    }
}
