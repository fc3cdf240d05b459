// A strict little well-formedness check for the XML the report writes (its
// SVG elements): tags nest and close, attributes are quoted, '&' starts an
// entity. Enough to catch a broken plot in a fast test without a parser
// dependency. Returns "" when well-formed, else what is wrong and where.
#pragma once

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::report {

inline std::string xml_problem(std::string_view xml) {
    std::vector<std::string> open;
    std::size_t i = 0;
    auto where = [&](std::size_t at) { return " at offset " + std::to_string(at); };
    auto check_text = [&](std::string_view text, std::size_t at) -> std::string {
        for (std::size_t k = 0; k < text.size(); ++k) {
            if (text[k] == '<') return "raw '<' in text" + where(at + k);
            if (text[k] == '&') {
                auto semi = text.find(';', k);
                if (semi == std::string_view::npos || semi - k > 8) return "bare '&'" + where(at + k);
            }
        }
        return "";
    };
    while (i < xml.size()) {
        std::size_t lt = xml.find('<', i);
        std::string problem = check_text(xml.substr(i, lt == std::string_view::npos ? std::string_view::npos : lt - i), i);
        if (!problem.empty()) return problem;
        if (lt == std::string_view::npos) break;
        std::size_t gt = xml.find('>', lt);
        if (gt == std::string_view::npos) return "unclosed tag" + where(lt);
        std::string_view tag = xml.substr(lt + 1, gt - lt - 1);
        i = gt + 1;
        if (tag.starts_with("!") || tag.starts_with("?")) continue;
        if (tag.starts_with("/")) {
            std::string name(tag.substr(1));
            if (open.empty() || open.back() != name)
                return "</" + name + "> closes " + (open.empty() ? std::string("nothing") : "<" + open.back() + ">") + where(lt);
            open.pop_back();
            continue;
        }
        bool self_closing = tag.ends_with("/");
        if (self_closing) tag.remove_suffix(1);
        std::size_t k = 0;
        while (k < tag.size() && !std::isspace(static_cast<unsigned char>(tag[k]))) ++k;
        std::string name(tag.substr(0, k));
        if (name.empty()) return "empty tag name" + where(lt);
        // attributes: name="value"
        while (k < tag.size()) {
            while (k < tag.size() && std::isspace(static_cast<unsigned char>(tag[k]))) ++k;
            if (k >= tag.size()) break;
            std::size_t eq = tag.find('=', k);
            if (eq == std::string_view::npos || eq + 1 >= tag.size() || (tag[eq + 1] != '"' && tag[eq + 1] != '\''))
                return "unquoted attribute in <" + name + ">" + where(lt);
            char quote = tag[eq + 1];
            std::size_t close = tag.find(quote, eq + 2);
            if (close == std::string_view::npos) return "unterminated attribute in <" + name + ">" + where(lt);
            problem = check_text(tag.substr(eq + 2, close - eq - 2), lt);
            if (!problem.empty()) return problem;
            k = close + 1;
        }
        if (!self_closing) open.push_back(name);
    }
    if (!open.empty()) return "<" + open.back() + "> never closed";
    return "";
}

} // namespace nightshift::report
