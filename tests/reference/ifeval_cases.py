"""Held-out IFEval cases (doc, response) for ifeval_goldens.py. The verdicts are not written here:
the script asks lm-eval for them. `want`, where given, is what the case was written to show; the
script reports a case whose verdicts differ from it."""

# Every build_description argument, as the rows of google/IFEval carry them (null when unused).
HF_KEYS = ["num_highlights", "relation", "num_words", "num_placeholders", "prompt_to_repeat",
           "num_paragraphs", "postscript_marker", "first_word", "keyword", "frequency", "num_sentences",
           "section_spliter", "num_sections", "keywords", "forbidden_words", "end_phrase", "num_bullets", "language",
           "nth_paragraph", "capital_frequency", "capital_relation", "letter", "let_frequency",
           "let_relation"]

CASES = []


def case(name, ids, kwargs, response, prompt="Write a short answer.", hf=False, want=None):
    if isinstance(ids, str):
        ids, kwargs = [ids], [kwargs]
    if hf:
        kwargs = [{k: kw.get(k) for k in HF_KEYS} for kw in kwargs]
    doc = {"key": 1000 + len(CASES), "prompt": prompt, "instruction_id_list": ids, "kwargs": kwargs}
    c = {"name": name, "doc": doc, "response": response}
    if want is not None:
        c["want"] = {"strict": list(want[0]), "loose": list(want[1])}
    CASES.append(c)


T, F = True, False
one = lambda s, l: ([s], [l])

# keywords:existence -- each keyword is a regex searched case-insensitively
K = "keywords:existence"
case("existence_pass", K, {"keywords": ["banana", "apple"]}, "I like Apple pie and BANANA bread.", want=one(T, T))
case("existence_missing_one", K, {"keywords": ["banana", "cherry"]}, "I like banana bread.", want=one(F, F))
case("existence_substring", K, {"keywords": ["cat"]}, "Concatenate the strings.", want=one(T, T))
case("existence_hf_nulls", K, {"keywords": ["river", "stone"]}, "A stone sat by the river.", hf=True, want=one(T, T))
case("existence_unicode_case", K, {"keywords": ["ÉCOLE"]}, "Je vais à l'école demain.", want=one(T, T))

# keywords:frequency -- regex findall count, case-insensitive
K = "keywords:frequency"
case("frequency_at_least_pass", K, {"keyword": "data", "frequency": 3, "relation": "at least"},
     "Data matters. We store data. DATA is king.", want=one(T, T))
case("frequency_at_least_fail", K, {"keyword": "data", "frequency": 3, "relation": "at least"},
     "Data matters. We store data.", want=one(F, F))
case("frequency_less_than_pass", K, {"keyword": "cloud", "frequency": 2, "relation": "less than"},
     "One cloud in the sky.", want=one(T, T))
case("frequency_less_than_fail", K, {"keyword": "cloud", "frequency": 2, "relation": "less than"},
     "A cloud and another Cloud.", want=one(F, F))
case("frequency_counts_substrings", K, {"keyword": "the", "frequency": 3, "relation": "at least"},
     "There they go.", hf=True, want=one(F, F))
case("frequency_keyword_stripped", K, {"keyword": " sun ", "frequency": 2, "relation": "at least"},
     "The sun rose; the sunset came.", want=one(T, T))

# keywords:forbidden_words -- \bword\b, case-insensitive
K = "keywords:forbidden_words"
case("forbidden_pass", K, {"forbidden_words": ["bad", "ugly"]}, "This is a good day.", want=one(T, T))
case("forbidden_fail_case", K, {"forbidden_words": ["bad", "ugly"]}, "This is Bad.", want=one(F, F))
case("forbidden_word_boundary", K, {"forbidden_words": ["bad"]}, "He behaved badly.", want=one(T, T))
case("forbidden_unicode_boundary", K, {"forbidden_words": ["caf"]}, "Un café, s'il vous plaît.", want=one(T, T))
case("forbidden_unicode_word", K, {"forbidden_words": ["café"]}, "Un café, s'il vous plaît.", hf=True, want=one(F, F))
case("forbidden_astral_letter_is_word", K, {"forbidden_words": ["it"]}, "Use it\U0001D400\U0001D401 now.", want=one(T, T))
case("forbidden_emoji_is_not_word", K, {"forbidden_words": ["great"]}, "This is great\U0001F600", want=one(F, F))
case("forbidden_digit_boundary", K, {"forbidden_words": ["top"]}, "He was top10 in the race.", want=one(T, T))

# keywords:letter_frequency -- Counter over value.lower()
K = "keywords:letter_frequency"
case("letter_at_least_pass", K, {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
     "Zebras zigzag zealously.", want=one(T, T))
case("letter_less_than_fail", K, {"letter": "e", "let_frequency": 2, "let_relation": "less than"},
     "Here we are.", want=one(F, F))
case("letter_upper_kwarg", K, {"letter": "Q", "let_frequency": 2, "let_relation": "at least"},
     "Quick quiet quails.", hf=True, want=one(T, T))
case("letter_dotted_capital_i", K, {"letter": "i", "let_frequency": 2, "let_relation": "at least"},
     "\u0130stanbul is big", want=one(T, T))
case("letter_less_than_pass", K, {"letter": "x", "let_frequency": 1, "let_relation": "less than"},
     "No such letter here.", want=one(T, T))

# language:response_language -- langdetect; an exception counts as following
K = "language:response_language"
case("language_es_pass", K, {"language": "es"},
     "Esta es una respuesta escrita completamente en español para el usuario.", want=one(T, T))
case("language_es_got_en", K, {"language": "es"},
     "This answer is written entirely in English for the user who asked.", want=one(F, F))
case("language_hi_pass", K, {"language": "hi"},
     "यह उत्तर पूरी तरह से हिंदी में लिखा गया है और मुझे आशा है कि आपको पसंद आएगा।", hf=True, want=one(T, T))
case("language_ja_pass", K, {"language": "ja"}, "これは完全に日本語で書かれた答えです。", want=one(T, T))
case("language_ru_got_uk", K, {"language": "ru"},
     "Це відповідь, повністю написана українською мовою для вас.", want=one(F, F))
case("language_uk_pass", K, {"language": "uk"},
     "Це відповідь, повністю написана українською мовою для вас.", want=one(T, T))
case("language_no_features", K, {"language": "de"}, "12345 !!! 678", want=one(T, T))
case("language_fa_pass", K, {"language": "fa"},
     "این پاسخ کاملاً به زبان فارسی برای شما نوشته شده است.", want=one(T, T))
case("language_ar_got_fa", K, {"language": "ar"},
     "این پاسخ کاملاً به زبان فارسی برای شما نوشته شده است.", want=one(F, F))
case("language_ko_pass", K, {"language": "ko"}, "이것은 완전히 한국어로 작성된 답변입니다.", want=one(T, T))
case("language_de_pass", K, {"language": "de"},
     "Dies ist eine Antwort, die vollständig auf Deutsch geschrieben ist.", want=one(T, T))
case("language_fr_pass", K, {"language": "fr"},
     "Ceci est une réponse entièrement écrite en français, sans aucun mot anglais.", want=one(T, T))
case("language_mr_pass", K, {"language": "mr"},
     "हे उत्तर पूर्णपणे मराठीत लिहिले आहे आणि मला आशा आहे की तुम्हाला ते आवडेल.", want=one(T, T))
case("language_ta_pass", K, {"language": "ta"}, "இது முழுவதும் தமிழில் எழுதப்பட்ட பதில்.", want=one(T, T))
case("language_th_pass", K, {"language": "th"}, "นี่คือคำตอบที่เขียนเป็นภาษาไทยทั้งหมด", want=one(T, T))
case("language_de_got_nl", K, {"language": "de"},
     "Het is een mooie dag en ik ga naar de markt met mijn vrienden.", want=one(F, F))
case("language_pt_got_es", K, {"language": "pt"},
     "Esta es una respuesta escrita completamente en español para el usuario.", want=one(F, F))
case("language_it_pass", K, {"language": "it"}, "Questa è una risposta scritta interamente in italiano per te.",
     want=one(T, T))
case("language_sw_pass", K, {"language": "sw"}, "Hii ni jibu lililoandikwa kwa Kiswahili kabisa kwa ajili yako.",
     want=one(T, T))
case("language_fi_pass", K, {"language": "fi"}, "Tämä on vastaus, joka on kirjoitettu kokonaan suomeksi sinulle.",
     want=one(T, T))
case("language_bg_pass", K, {"language": "bg"}, "Това е отговор, написан изцяло на български език за вас.",
     want=one(T, T))
case("language_ur_pass", K, {"language": "ur"}, "یہ جواب مکمل طور پر اردو میں آپ کے لیے لکھا گیا ہے۔",
     want=one(T, T))
case("language_ne_pass", K, {"language": "ne"},
     "यो उत्तर पूर्ण रूपमा नेपालीमा लेखिएको छ र मलाई आशा छ कि तपाईंलाई मन पर्नेछ।", want=one(T, T))

# length_constraints:number_sentences -- punkt
K = "length_constraints:number_sentences"
NS = lambda n, r: {"num_sentences": n, "relation": r}
case("sentences_three_at_least", K, NS(3, "at least"), "Hello there. How are you? I am fine!", want=one(T, T))
case("sentences_three_less_than", K, NS(3, "less than"), "Hello there. How are you? I am fine!", want=one(F, F))
case("sentences_newlines_no_period", K, NS(2, "less than"), "Line one\nLine two\nLine three", want=one(T, T))
case("sentences_abbrev_lowercase_next", K, NS(2, "less than"), "We met at 5 p.m. yesterday in the park.",
     want=one(T, T))
case("sentences_eg_splits", K, NS(2, "at least"), "I like fruit, e.g. apples and pears.", want=one(T, T))
case("sentences_us_then_it", K, NS(2, "at least"), "He lives in the U.S. It is a big country.", want=one(T, T))
case("sentences_numbered_list", K, NS(4, "at least"), "Steps:\n1. Open the door.\n2. Walk in.", hf=True)
case("sentences_quote_realign", K, NS(2, "at least"), 'He said "Stop." Then he left.')
case("sentences_decimal", K, NS(2, "less than"), "The value is 3.14 today.", want=one(T, T))
case("sentences_exclaim_run", K, NS(3, "at least"), "Wow!!! Really?! Yes.")
case("sentences_paren", K, NS(2, "at least"), "(This is one.) This is two.")
case("sentences_lowercase_start", K, NS(3, "at least"), "it rained. we stayed in. nobody minded.")
case("sentences_loose_first_line", K, NS(2, "less than"), "Sure. Here you go.\nOne sentence only",
     want=([F], [T]))

# length_constraints:number_paragraphs -- split on \s?\*\*\*\s?
K = "length_constraints:number_paragraphs"
case("paragraphs_three_pass", K, {"num_paragraphs": 3}, "First.\n***\nSecond.\n***\nThird.", want=one(T, T))
case("paragraphs_count_wrong", K, {"num_paragraphs": 2}, "First.\n***\nSecond.\n***\nThird.", want=([F], [T]))
case("paragraphs_empty_middle", K, {"num_paragraphs": 2}, "First.\n***\n***\nThird.", want=one(F, F))
case("paragraphs_edge_dividers", K, {"num_paragraphs": 2}, "***\nFirst.\n***\nSecond.\n***", hf=True,
     want=one(T, T))
case("paragraphs_spaced_stars", K, {"num_paragraphs": 2}, "First.\n* * *\nSecond.", want=one(F, F))

# length_constraints:number_words -- RegexpTokenizer(\w+)
K = "length_constraints:number_words"
NW = lambda n, r: {"num_words": n, "relation": r}
case("words_less_than_pass", K, NW(5, "less than"), "one two three four", want=one(T, T))
case("words_at_least_fail", K, NW(10, "at least"), "one two three four", want=one(F, F))
case("words_underscore_digits_hyphen", K, NW(4, "at least"), "snake_case 123 co-op", hf=True, want=one(T, T))
case("words_exact_boundary", K, NW(4, "less than"), "snake_case 123 co-op", want=one(F, F))
case("words_devanagari_marks", K, NW(4, "at least"), "हिन्दी भाषा")
case("words_devanagari_marks_2", K, NW(5, "less than"), "हिन्दी भाषा")
case("words_apostrophes", K, NW(6, "at least"), "Don't stop, it's fine.")

# length_constraints:nth_paragraph_first_word -- split on \n\n
K = "length_constraints:nth_paragraph_first_word"
NP = lambda n, i, w: {"num_paragraphs": n, "nth_paragraph": i, "first_word": w}
case("nth_pass", K, NP(2, 2, "however"), "Cats sleep a lot.\n\nHowever, dogs do too.", want=one(T, T))
case("nth_wrong_word", K, NP(2, 2, "however"), "Cats sleep a lot.\n\nBut dogs do too.", want=one(F, F))
case("nth_wrong_count", K, NP(3, 2, "however"), "Cats sleep a lot.\n\nHowever, dogs do too.", want=one(F, F))
case("nth_quoted_first", K, NP(2, 1, "hello"), '"Hello!" she said.\n\nThen she left.', hf=True, want=one(T, T))
case("nth_uppercase_kwarg", K, NP(1, 1, "Summer"), "summer is hot.", want=one(T, T))
case("nth_empty_paragraph_index", K, NP(2, 2, "second"), "First one.\n\n\n\nSecond one.")
case("nth_bold_word_loose", K, NP(2, 1, "intro"), "**Intro** text here.\n\nMore text.")
case("nth_loose_first_line", K, NP(2, 1, "apples"), "Sure, here it is:\nApples are red.\n\nPears are green.")

# detectable_content:number_placeholders
K = "detectable_content:number_placeholders"
case("placeholders_pass", K, {"num_placeholders": 2}, "Dear [name], we will visit [address].", want=one(T, T))
case("placeholders_fail", K, {"num_placeholders": 2}, "Dear [name], see you.", want=one(F, F))
case("placeholders_nonempty_lazy", K, {"num_placeholders": 3}, "[a][b] [] and [c", hf=True, want=one(T, T))

# detectable_content:postscript
K = "detectable_content:postscript"
case("postscript_ps_pass", K, {"postscript_marker": "P.S."}, "Thanks for reading.\nP.S. See you soon.", want=one(T, T))
case("postscript_ps_lower", K, {"postscript_marker": "P.S."}, "Thanks.\np.s. bye", want=one(T, T))
case("postscript_ps_fail", K, {"postscript_marker": "P.S."}, "Thanks.\nPS see you", want=one(F, F))
case("postscript_pps_pass", K, {"postscript_marker": "P.P.S"}, "Hi.\nP. P. S. one more thing", hf=True,
     want=one(T, T))
case("postscript_other_marker", K, {"postscript_marker": "Note:"}, "Body.\nNOTE: remember this.", want=one(T, T))
case("postscript_other_marker_fail", K, {"postscript_marker": "Note:"}, "Body.\nNotes remember this.",
     want=one(F, F))

# detectable_format:number_bullet_lists
K = "detectable_format:number_bullet_lists"
case("bullets_pass", K, {"num_bullets": 3}, "Items:\n* one\n* two\n- three", want=one(T, T))
case("bullets_fail", K, {"num_bullets": 3}, "Items:\n* one\n* two", want=one(F, F))
case("bullets_bold_line_not_bullet", K, {"num_bullets": 2}, "**Title**\n* one\n* two", hf=True, want=one(T, T))
case("bullets_indented", K, {"num_bullets": 2}, "List:\n   * one\n\t- two", want=one(T, T))
case("bullets_too_many", K, {"num_bullets": 1}, "* one\n* two", want=([F], [T]))
case("bullets_too_many_4", K, {"num_bullets": 1}, "* one\n* two\n* three\n* four", want=one(F, F))

# detectable_format:constrained_response
K = "detectable_format:constrained_response"
case("constrained_pass", K, {}, "My answer is yes.", want=one(T, T))
case("constrained_embedded", K, {}, "After thought: My answer is maybe. Truly.", hf=True, want=one(T, T))
case("constrained_fail_case", K, {}, "My answer is Yes.", want=one(F, F))

# detectable_format:number_highlighted_sections
K = "detectable_format:number_highlighted_sections"
case("highlights_pass", K, {"num_highlights": 2}, "Here is *one* and *two*.", want=one(T, T))
case("highlights_fail", K, {"num_highlights": 2}, "Here is *one* only.", want=one(F, F))
case("highlights_double", K, {"num_highlights": 2}, "Here is **bold** and *it*.", hf=True)
case("highlights_empty_not_counted", K, {"num_highlights": 1}, "Here is * * and **  **.", want=one(F, F))

# detectable_format:multiple_sections
K = "detectable_format:multiple_sections"
SEC = lambda s, n: {"section_spliter": s, "num_sections": n}
case("sections_pass", K, SEC("Section", 2), "Section 1\nIntro.\nSection 2\nBody.", want=one(T, T))
case("sections_fail_case", K, SEC("Section", 2), "section 1\nIntro.\nsection 2\nBody.", want=one(F, F))
case("sections_upper", K, SEC("SECTION", 3), "SECTION 1 a\nSECTION 2 b\nSECTION 3 c", hf=True, want=one(T, T))
case("sections_too_few", K, SEC("SECTION", 3), "SECTION 1 a\nSECTION 2 b", want=one(F, F))

# detectable_format:json_format -- json.loads after stripping ``` fences
K = "detectable_format:json_format"
case("json_fenced", K, {}, '```json\n{"a": 1, "b": [true, null]}\n```', want=one(T, T))
case("json_plain", K, {}, '{"name": "x"}', hf=True, want=one(T, T))
case("json_invalid", K, {}, "{'name': 'x'}", want=one(F, F))
case("json_trailing_comma", K, {}, '{"a": 1,}', want=one(F, F))
case("json_nan", K, {}, '{"a": NaN, "b": -Infinity}', want=one(T, T))
case("json_scalar", K, {}, "```\n42\n```", want=one(T, T))
case("json_loose_first_line", K, {}, 'Here is the JSON:\n{"a": 1}', want=([F], [T]))
case("json_control_char", K, {}, '{"a": "x\ty"}', want=one(F, F))
case("json_upper_fence", K, {}, '```JSON\n[1, 2.5e3, "\\u00e9"]\n```', want=one(T, T))

# detectable_format:title
K = "detectable_format:title"
case("title_pass", K, {}, "<<Poem of Joy>>\nRoses are red.", want=one(T, T))
case("title_blank", K, {}, "<<   >>\nRoses are red.", want=one(F, F))
case("title_missing", K, {}, "Poem of Joy\nRoses are red.", hf=True, want=one(F, F))
case("title_multiline", K, {}, "<<Poem\nof Joy>>", want=one(F, F))

# combination:two_responses
K = "combination:two_responses"
case("two_responses_pass", K, {}, "First answer.\n******\nSecond answer.", want=one(T, T))
case("two_responses_same", K, {}, "Same.\n******\nSame.", want=one(F, F))
case("two_responses_three", K, {}, "A\n******\nB\n******\nC", hf=True, want=([F], [T]))
case("two_responses_edges", K, {}, "******\nA\n******\nB\n******", want=one(T, T))
case("two_responses_empty_middle", K, {}, "A\n******\n******\nB", want=one(F, F))

# combination:repeat_prompt
K = "combination:repeat_prompt"
RP = {"prompt_to_repeat": "Write a poem about cats."}
case("repeat_pass", K, RP, "write a poem about CATS. Cats are soft and warm.", want=one(T, T))
case("repeat_fail", K, RP, "Here is a poem about cats.", want=one(F, F))
case("repeat_loose_bold", K, RP, "**Write a poem about cats.**\nCats purr.", hf=True, want=([F], [T]))

# startend:end_checker
K = "startend:end_checker"
EC = {"end_phrase": "Is there anything else I can help with?"}
case("end_pass", K, EC, "Here is the answer. Is there anything else I can help with?", want=one(T, T))
case("end_quoted", K, EC, '"Here is the answer. Is there anything else I can help with?"', want=one(T, T))
case("end_fail", K, EC, "Is there anything else I can help with? Bye.", want=one(F, F))
case("end_loose_last_line", K, EC, "Answer. Is there anything else I can help with?\nThanks!", hf=True,
     want=([F], [T]))
case("end_loose_stars", K, EC, "Answer. **Is there anything else I can help with?**", want=([F], [T]))

# startend:quotation
K = "startend:quotation"
case("quotation_pass", K, {}, '"The whole answer."', want=one(T, T))
case("quotation_fail", K, {}, "The whole answer.", want=one(F, F))
case("quotation_single_char", K, {}, '"', want=one(F, F))
case("quotation_loose_first_line", K, {}, 'Sure, here is my answer:\n"The whole answer."', hf=True,
     want=([F], [T]))
case("quotation_loose_stars", K, {}, '*"The whole answer."*', want=([F], [T]))

# change_case:capital_word_frequency -- nltk.word_tokenize, word.isupper()
K = "change_case:capital_word_frequency"
CW = lambda n, r: {"capital_frequency": n, "capital_relation": r}
case("capital_words_pass", K, CW(3, "at least"), "I LOVE NEW York.", want=one(T, T))
case("capital_words_fail", K, CW(2, "less than"), "I LOVE NEW York.", want=one(F, F))
case("capital_words_contraction", K, CW(2, "at least"), "DON'T go.", hf=True, want=one(T, T))
case("capital_words_less_than_pass", K, CW(5, "less than"), "Only ONE word here is loud.", want=one(T, T))
case("capital_words_punct_tokens", K, CW(3, "at least"), "NASA, FBI and (CIA) agree.", want=one(T, T))
case("capital_words_astral", K, CW(3, "at least"), "\U0001D400\U0001D401 IS BOLD.", want=one(T, T))
case("capital_words_cannot", K, CW(2, "at least"), "I cannot say. WE CANNOT.")

# change_case:english_capital
K = "change_case:english_capital"
case("english_capital_pass", K, {},
     "THIS IS A SHORT ANSWER WRITTEN ENTIRELY IN CAPITAL LETTERS. I HOPE YOU LIKE IT.", want=one(T, T))
case("english_capital_lower", K, {}, "This is a short answer written in normal case.", want=one(F, F))
case("english_capital_digits_only", K, {}, "12345", hf=True, want=one(F, F))
case("english_capital_loose_first_line", K, {},
     "Sure, here it is:\nTHE QUICK BROWN FOX JUMPS OVER THE LAZY DOG AND THEN RUNS AWAY INTO THE FOREST.",
     want=([F], [T]))

# change_case:english_lowercase
K = "change_case:english_lowercase"
case("english_lowercase_pass", K, {},
     "this is a short answer written entirely in lowercase letters. i hope you like it.", want=one(T, T))
case("english_lowercase_capital", K, {}, "this is a short answer with One capital letter in it.",
     want=one(F, F))
case("english_lowercase_spanish", K, {}, "esta es una respuesta escrita completamente en español para el usuario.",
     hf=True, want=one(F, F))
case("english_lowercase_loose_last_line", K, {},
     "this is a short answer written entirely in lowercase letters for you.\nThanks!", want=([F], [T]))

# punctuation:no_comma
K = "punctuation:no_comma"
case("no_comma_pass", K, {}, "No commas here at all.", want=one(T, T))
case("no_comma_fail", K, {}, "Well, there is one.", want=one(F, F))
case("no_comma_loose_first_line", K, {}, "Sure, here you go:\nNo commas here", hf=True, want=([F], [T]))
case("no_comma_fullwidth", K, {}, "中文，逗号", want=one(T, T))

# empty and whitespace-only responses never follow
case("empty_response", ["punctuation:no_comma", "keywords:forbidden_words"], [{}, {"forbidden_words": ["x"]}],
     "", want=([F, F], [F, F]))
case("whitespace_response", ["punctuation:no_comma", "detectable_format:title"], [{}, {}], "  \n\t \u00a0",
     want=([F, F], [F, F]))
case("crlf_lines", ["startend:quotation", "punctuation:no_comma"], [{}, {}], 'Sure, ok:\r\n"Answer"\r\n',
     want=([F, F], [T, T]))

# several instructions in one doc
case("multi_json_forbidden", ["detectable_format:json_format", "keywords:forbidden_words"],
     [{}, {"forbidden_words": ["secret"]}], '```json\n{"key": "value"}\n```', hf=True, want=([T, T], [T, T]))
case("multi_mixed", ["punctuation:no_comma", "length_constraints:number_words", "startend:end_checker"],
     [{}, {"num_words": 5, "relation": "at least"}, {"end_phrase": "Any other questions?"}],
     "Sure, here it is:\nCats are lovely animals to keep. Any other questions?", hf=True,
     want=([F, T, T], [T, T, T]))
case("multi_prompt_level_fail", ["keywords:existence", "change_case:english_lowercase"],
     [{"keywords": ["moon"]}, {}], "the moon is bright tonight and the stars are out.", hf=True)
case("multi_highlight_sections", ["detectable_format:number_highlighted_sections", "detectable_format:multiple_sections"],
     [{"num_highlights": 2}, {"section_spliter": "Section", "num_sections": 2}],
     "Section 1\n*First* point.\nSection 2\n*Second* point.", hf=True, want=([T, T], [T, T]))
case("multi_paragraph_bullets", ["length_constraints:number_paragraphs", "detectable_format:number_bullet_lists"],
     [{"num_paragraphs": 2}, {"num_bullets": 2}], "Intro text.\n***\n* one\n* two", hf=True)
case("multi_title_quote", ["detectable_format:title", "startend:quotation", "punctuation:no_comma"],
     [{}, {}, {}], '"<<A Title>>\nA body without commas."', hf=True, want=([T, T, T], [T, T, T]))
case("multi_two_responses_capital", ["combination:two_responses", "change_case:english_capital"],
     [{}, {}], "THE FIRST ANSWER IS HERE FOR YOU TO READ.\n******\nTHE SECOND ANSWER IS ALSO HERE FOR YOU.",
     hf=True)
case("multi_language_sentences", ["language:response_language", "length_constraints:number_sentences"],
     [{"language": "de"}, {"num_sentences": 2, "relation": "at least"}],
     "Dies ist eine Antwort. Sie ist vollständig auf Deutsch geschrieben.", hf=True)
case("multi_postscript_placeholder", ["detectable_content:postscript", "detectable_content:number_placeholders"],
     [{"postscript_marker": "P.S."}, {"num_placeholders": 1}],
     "Hello [name],\nSee you.\nP.S. bring [item].", hf=True, want=([T, T], [T, T]))
case("multi_repeat_letter", ["combination:repeat_prompt", "keywords:letter_frequency"],
     [{"prompt_to_repeat": "Say hi."}, {"letter": "h", "let_frequency": 3, "let_relation": "at least"}],
     "Say hi. Hello, hi there!", prompt="Say hi. Repeat the request first.", hf=True, want=([T, T], [T, T]))

# Texts for nltk's sentence and word tokenizers alone (count_sentences, word_tokenize): the script writes
# punkt's sentences and word_tokenize's tokens for each.
TOKENIZER_TEXTS = [
    "Hello there. How are you? I am fine!",
    "We met at 5 p.m. yesterday in the park. It was fun.",
    "I like fruit, e.g. apples and pears.",
    "He lives in the U.S. It is a big country.",
    "Steps:\n1. Open the door.\n2. Walk in.\n3. Sit down.",
    'He said "Stop." Then he left.',
    "The value is 3.14 today. It was 2.72 yesterday.",
    "Wow!!! Really?! Yes.",
    "(This is one.) This is two.",
    "it rained. we stayed in. nobody minded.",
    "Mr. and Mrs. jones arrived. They sat.",
    "The meeting is on Jan. 5th and runs late.",
    "Prices rose 5% in 2020. The next year was calmer.",
    "Visit example.com. Then sign up.",
    "# Title\n\nFirst paragraph here.\n\n- item one\n- item two",
    "**Bold.** Normal text follows here.",
    "No punctuation at all",
    "Ends with a question?",
    "  Leading and trailing spaces.   Second one.  ",
    "Three dots... and more text.",
    "Quote: 'Single quoted.' Next sentence.",
    "A sentence.\n\nAnother after a blank line.\nA third on the next line.",
    "I CAN'T DO IT. WE WON'T STOP!",
    "They're here; we'll see. You'd know.",
    "Don't split U.S.A. tokens oddly, ok?",
    "Numbers like 1,000 and 2.5 stay whole.",
    "Email me at a@b.com. Thanks.",
    "The price is $5.99 (tax incl.) today.",
    "He said, \"I'm done.\" She nodded.",
    "End with ellipsis...",
    "Multiple   spaces.   Between   sentences.",
    "Tabs\there.\tAnd here.",
    "Colon: then text. Semicolon; then more.",
    "«Guillemets» and “curly quotes” here. Done.",
    "gonna wanna gotta cannot lemme gimme",
    "'Tis the season. 'twas fine.",
    "A list: [1] one; {2} two; <3> three.",
    "Ph.D. students work hard. Prof. lee agreed.",
    "I cannot\U0001D400\U0001D401 go. d'ye\U0001D400 know? 'twas\U0001D7CF fine:\U0001D7CF0",
    "Line\u2028separator. Next\x85one. Odd\x1cspace.",
]
