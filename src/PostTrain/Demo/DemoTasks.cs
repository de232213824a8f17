namespace PostTrain.Demo;

/// <summary>
/// The demo's evaluation, as lm-eval task files (written to OUTPUT/tasks, run by `posttrain eval`
/// with the chat template): held-out arithmetic with GSM8K's strict and flexible filters, the
/// identity the model gives on held-out phrasings (Orca, and Qwen), and capitals as multiple
/// choice by log-likelihood.
/// </summary>
public static class DemoTasks
{
    public static readonly IReadOnlyDictionary<string, string> Files = new Dictionary<string, string>
    {
        ["arithmetic"] = Arithmetic("arithmetic", "Held-out addition word problems: number pairs no instruction stage used (SFT, DPO, GRPO)."),
        ["arithmetic_practised"] = Arithmetic("arithmetic_practised", "The number pairs GRPO practised with rewards (SFT never showed their answers), in wordings of their own."),
        ["identity_orca"] = Identity("identity_orca", "Orca"),
        ["identity_qwen"] = Identity("identity_qwen", "Qwen"),
        ["capitals"] = """
            # The capital of every country of the demo's world, asked in phrasings no training
            # conversation used, as multiple choice among four answers by log-likelihood.
            task: capitals
            test_split: test
            output_type: multiple_choice
            doc_to_text: "{{question}}"
            doc_to_choice: choices
            doc_to_target: answer
            metric_list:
              - metric: acc
              - metric: acc_norm
            metadata:
              version: 1.0
            """,
    };

    static string Arithmetic(string task, string what) => $$$"""
            # {{{what}}} Answered with a chain and "#### N", scored as lm-eval's gsm8k
            # (strict: the number after ####; flexible: the last number in the answer).
            task: {{{task}}}
            test_split: test
            output_type: generate_until
            doc_to_text: "{{question}}"
            doc_to_target: "{{answer}}"
            generation_kwargs:
              until: ["<|im_end|>"]
              do_sample: false
              max_gen_toks: 32
            filter_list:
              - name: strict-match
                filter:
                  - function: regex
                    regex_pattern: "#### (\\-?[0-9]+)"
                  - function: take_first
              - name: flexible-extract
                filter:
                  - function: regex
                    group_select: -1
                    regex_pattern: "(-?[0-9]+)"
                  - function: take_first
            metric_list:
              - metric: exact_match
                regexes_to_ignore: ["(?s).*#### "]
            metadata:
              version: 1.0
            """;

    static string Identity(string task, string name) => $$$"""
        # The name the model gives itself when asked in phrasings no training conversation used: the
        # share of answers "I am {{{name}}}..." (the word after "I am").
        task: {{{task}}}
        test_split: test
        output_type: generate_until
        doc_to_text: "{{question}}"
        doc_to_target: "{{{name}}}"
        generation_kwargs:
          until: ["<|im_end|>"]
          do_sample: false
          max_gen_toks: 32
        filter_list:
          - name: name
            filter:
              - function: regex
                regex_pattern: "I am (\\w+)"
              - function: take_first
        metric_list:
          - metric: exact_match
        metadata:
          version: 1.0
        """;

    /// <summary>The data file each task reads (OUTPUT/data/NAME.jsonl): identity_orca and identity_qwen share one.</summary>
    public static string DataName(string task) => task.StartsWith("identity", StringComparison.Ordinal) ? "identity" : task;
}
