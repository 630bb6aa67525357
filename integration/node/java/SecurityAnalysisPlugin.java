/*
 * The four analysis components the Elasticsearch security index (.security-7) declares in its
 * settings: tokenizer uax_url_email and token filters pattern_capture, lowercase and unique. They
 * live in the analysis-common module, which the integ-test-zip on Maven Central ships without, so
 * with security on the first role, user or API key could not be stored. Compiled by echo-splade at
 * install time against the node's own lib/ jars (the Lucene classes are in lucene-analysis-common).
 *
 * Semantics follow analysis-common for the settings the security index uses: pattern_capture reads
 * "patterns" and "preserve_original" (default true); unique removes duplicate tokens at the same
 * position (analysis-common's only_on_same_position=true), which is enough for email search.
 */
package org.echosplade.securityanalysis;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.core.LowerCaseFilter;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.apache.lucene.analysis.miscellaneous.RemoveDuplicatesTokenFilter;
import org.apache.lucene.analysis.pattern.PatternCaptureGroupTokenFilter;
import org.elasticsearch.index.analysis.TokenFilterFactory;
import org.elasticsearch.index.analysis.TokenizerFactory;
import org.elasticsearch.indices.analysis.AnalysisModule.AnalysisProvider;
import org.elasticsearch.plugins.AnalysisPlugin;
import org.elasticsearch.plugins.Plugin;

public class SecurityAnalysisPlugin extends Plugin implements AnalysisPlugin {

    private static TokenFilterFactory filter(String name, java.util.function.UnaryOperator<TokenStream> create) {
        return new TokenFilterFactory() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public TokenStream create(TokenStream tokenStream) {
                return create.apply(tokenStream);
            }
        };
    }

    @Override
    public Map<String, AnalysisProvider<TokenFilterFactory>> getTokenFilters() {
        Map<String, AnalysisProvider<TokenFilterFactory>> filters = new HashMap<>();
        filters.put("lowercase", (indexSettings, env, name, settings) -> filter(name, LowerCaseFilter::new));
        filters.put("unique", (indexSettings, env, name, settings) -> filter(name, RemoveDuplicatesTokenFilter::new));
        filters.put("pattern_capture", AnalysisPlugin.requiresAnalysisSettings((indexSettings, env, name, settings) -> {
            List<String> regexes = settings.getAsList("patterns");
            if (regexes.isEmpty()) {
                throw new IllegalArgumentException("pattern_capture filter [" + name + "] needs [patterns]");
            }
            Pattern[] patterns = regexes.stream().map(Pattern::compile).toArray(Pattern[]::new);
            boolean preserveOriginal = settings.getAsBoolean("preserve_original", true);
            return filter(name, in -> new PatternCaptureGroupTokenFilter(in, preserveOriginal, patterns));
        }));
        return filters;
    }

    @Override
    public Map<String, AnalysisProvider<TokenizerFactory>> getTokenizers() {
        Map<String, AnalysisProvider<TokenizerFactory>> tokenizers = new HashMap<>();
        tokenizers.put("uax_url_email",
            (indexSettings, env, name, settings) -> TokenizerFactory.newFactory(name, UAX29URLEmailTokenizer::new));
        return tokenizers;
    }
}
