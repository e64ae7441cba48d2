"""Phrase lists of the rule-based CheXpert labeler (`chexpert_labeler.py`): regular expressions over lower-cased
report text in which hyphens are spaces. Modelled on the CheXpert labeler's phrases/mention and NegBio's negation
and uncertainty patterns (Irvin et al., AAAI 2019; Peng et al., AMIA 2018), rewritten as regular expressions
because we have no dependency parser. Departures from CheXpert, each because the Open-i tags disagree with it:
"stable cardiomediastinal silhouette" is not an (uncertain) mention; "fibrosis" is not Pleural Other; a bare
"the heart" is not a Cardiomegaly mention (size words decide: see ANATOMY).
"""
from __future__ import annotations

# Observation -> phrases whose presence (not negated, not uncertain) makes the observation positive.
FINDINGS: dict[str, list[str]] = {
    "Enlarged Cardiomediastinum": [
        r"widen(?:ed|ing) (?:of )?(?:the )?(?:superior |upper )?mediastin\w*", r"mediastinal (?:widening|enlargement)",
        r"enlarged cardiomediastin\w*", r"cardiomediastinal enlargement",
        r"paratracheal (?:stripe |soft tissue )?(?:prominence|widening|fullness|enlargement)",
        r"(?:prominen\w*|widen\w*|fullness) (?:of |adjacent to )?(?:the )?(?:right |left )?paratracheal",
    ],
    "Cardiomegaly": [
        r"cardiomegaly", r"cardiac (?:enlargement|hypertrophy)", r"enlarged (?:heart|cardiac (?:silhouette|shadow))",
        r"enlargement of (?:the )?(?:heart|cardiac (?:silhouette|shadow))",
    ],
    "Lung Opacity": [
        r"opaci\w*", r"decreased translucency", r"increased (?:attenuation|density|densities)",
        r"air ?space (?:disease|process|filling)", r"infiltrat\w*",
        r"interstitial (?:markings?|pattern|opacit\w*|prominence|thickening|process|infiltrat\w*|lung disease"
        r"|changes?)",
        r"reticula\w*", r"reticulonodular", r"ground glass", r"haziness", r"parenchymal scarring",
        r"peribronchial (?:thickening|cuffing)",
        r"(?:patchy|streaky|hazy|airspace|air space|alveolar|focal|parenchymal|pulmonary|lung|linear|ill defined) "
        r"densit(?:y|ies)",
        r"densit(?:y|ies) (?:\w+ ){0,2}(?:in|within|at|of|involving|projecting over|overlying) (?:the )?(?:\w+ ){0,3}?"
        r"(?:lungs?|lobes?|bases?|apex|apices|lingula|perihilar|retrocardiac|midlung|hemithorax)",
    ],
    "Lung Lesion": [
        r"mass(?:es)?", r"nodul\w*", r"lump", r"cavitary (?:lesion|mass)", r"cavitation", r"cavity",
        r"carcinoma", r"neoplasm\w*", r"tumou?r\w*", r"malignan\w*",
    ],
    "Edema": [r"o?edema\w*", r"heart failure", r"chf"],
    "Consolidation": [r"consolidat\w*"],
    "Pneumonia": [r"(?:broncho)?pneumonia\w*", r"infection", r"infectious"],
    "Atelectasis": [r"atelecta\w*", r"collapsed?"],
    "Pneumothorax": [r"(?:hydro)?pneumothora(?:x|ces)", r"pleural air"],
    "Pleural Effusion": [r"effusions?", r"pleural fluid", r"hydropneumothorax", r"hydrothorax"],
    "Pleural Other": [
        r"pleural (?:thickening|scar\w*|plaques?|calcifications?)", r"pleuro ?parenchymal (?:scar\w*|thickening)",
        r"thickening of (?:the )?(?:\w+ )?pleura\w*", r"fibrothorax", r"(?:apical |pleural )cap(?:s|ping)?",
        r"(?:(?<=effusion versus )|(?<=effusion vs )|(?<=effusion or )|(?<=effusion and or ))thickening",
    ],
    "Fracture": [r"fractur\w*", r"fx"],
    "Support Devices": [
        r"pacer\w*", r"pacemaker\w*", r"picc\w*", r"catheters?", r"tubes?", r"tubing", r"tracheostomy",
        r"(?:central venous|venous|jugular|subclavian|ij|arterial|dialysis|swan ganz|central|midline) lines?",
        r"(?:prosthetic|mechanical|replacement|porcine|bioprosthetic|replaced) (?:\w+ )?valves?",
        r"valve (?:replacement|prosthesis)", r"hardware", r"arthroplast\w*", r"a?icd", r"defibrillator\w*",
        r"devices?", r"drains?", r"(?:fixation |surgical |metallic )?plates?(?! ?like)", r"screws?", r"cannula\w*",
        r"coils?", r"stents?", r"mediport", r"port ?a ?cath", r"portacath",
        r"(?:chest|power|infusion|venous|subcutaneous|right|left) (?:chest )?port", r"clips?",
        r"(?:monitor|ekg|ecg|pacing|pacer|pacemaker|cardiac|icd|aicd|defibrillator|epicardial|transvenous|telemetry)"
        r" (?:\w+ )?leads?", r"electrodes?", r"loop recorder", r"balloon pump", r"staples?", r"sutures?",
        r"(?:cabg|surgical) markers?", r"(?:ivc |vena cava )filter", r"shunt\w*",
        # de-identification hides the device's name ("right chest XXXX tip in the SVC", "cardiac XXXX generator")
        r"(?:chest|cardiac|xxxx) xxxx (?:tip|generator)", r"tips? (?:\w+ ){0,2}?(?:in|at|over|overlies|overlying|"
        r"projects?|projecting|terminat\w*|within|near|approximat\w*)", r"generator", r"stimulator", r"leads",
        r"prosthe(?:sis|ses|tic)", r"vertebroplasty", r"kyphoplasty", r"bone anchors?", r"(?:spinal )?fusion hardware",
    ],
}

# Observation -> phrases that imply at most an uncertain (-1) label (CheXpert: congestion suggests edema).
FINDINGS_UNCERTAIN: dict[str, list[str]] = {
    "Edema": [r"(?:vascular|pulmonary|venous|interstitial) congestion", r"congestive",
              r"(?:pulmonary )?vascular (?:prominence|engorgement|redistribution|indistinctness)",
              r"indistinct (?:pulmonary )?vascula\w*"],
}

# Observation -> (anatomy, abnormal size words, uncertain size words, normal size words). The anatomy is a mention
# only with a size word next to it: "heart size is normal" -> 0, "the heart is enlarged" -> 1, "borderline" -> -1.
ANATOMY: dict[str, tuple[str, str, str, str]] = {
    "Cardiomegaly": (
        r"(?:heart(?! failure)(?: size)?|cardiac (?:silhouette|size|shadow|contours?|diameter)|size of the heart"
        r"|cardiac (?:\w+ )?silhouette)",
        r"enlarg\w*|large|larger|increased|increasing|prominen\w*|cardiomegaly|big|globular|dilated",
        r"borderline",
        r"normal|unremarkable|within (?:the )?normal limits|upper limits? of normal|upper normal|top normal"
        r"|top (?:limits? )?of normal|not (?:significantly |appreciably )?enlarged|no enlargement|small",
    ),
    "Enlarged Cardiomediastinum": (
        r"(?:cardio)?mediastinum|(?:cardio)?mediastinal (?:silhouettes?|contours?|width|configuration|shadow|structures"
        r"|borders?)|(?:cardio)?mediastinal(?= and)",
        r"widen\w*|wide|enlarg\w*|prominen\w*|increased|large|bulg\w*",
        r"borderline",
        r"normal|unremarkable|within (?:the )?normal limits|upper limits? of normal|top normal"
        r"|not (?:significantly )?(?:widened|enlarged)",
    ),
}

# Observation -> phrases within which a mention does not count ("calcified nodule" is a granuloma, not a lesion).
UNMENTION: dict[str, list[str]] = {
    "Lung Lesion": [r"calcified (?:\w+ ){0,4}?nodul\w*", r"nodul\w* (?:\w+ ){0,8}?calcifi\w*",
                    r"(?:thoracic|pleural|abdominal|chest|peritoneal) cavity", r"nodul\w* calcifications?",
                    r"mass effect",
                    r"(?:breast|soft tissue|neck|abdominal) mass(?:es)?", r"nodular (?:calcific\w*|granulom\w*)",
                    r"calcified (?:\w+ )?mass",
                    r"nodul\w* (?:\w+ ){0,6}?(?:consistent with|compatible with|represent\w*|likely|probably)"
                    r" (?:\w+ ){0,3}?(?:granulom\w*|nipple\w*|calcifi\w*|fractures?|bone island)"],
    "Pleural Effusion": [r"pericardial effusions?", r"joint effusions?"],
    "Atelectasis": [r"collapsed? of (?:the )?(?:\w+ )?(?:vertebra\w*|body|bodies)",
                    r"(?:vertebral|vertebra|body|compression) (?:\w+ )?collapsed?"],
    "Support Devices": [r"tubes? (?:like|shaped)", r"support devices? (?:are|is) (?:not|none)"],
    "Lung Opacity": [r"pleural (?:\w+ )?opaci\w*"],
    "Edema": [r"(?:soft tissue|subcutaneous|extremity|leg|ankle) (?:\w+ )?o?edema"],
    "Pneumonia": [r"(?:urinary|urinary tract|viral|upper respiratory) infection",
                  r"granulomatous (?:\w+ )?infection", r"(?:old|prior|previous|remote|healed|past) (?:\w+ )?infection"],
}

# Abnormalities outside the 14 that still rule out "No Finding" (CheXpert's phrases/mention/no_finding.txt idea).
OTHER_FINDINGS: list[str] = [
    r"emphysema\w*", r"blunt\w*", r"elevat\w*", r"eventration", r"scolio\w*", r"kyphos\w*", r"kyphotic",
    r"degenerat\w*", r"spondylo\w*", r"osteophyt\w*", r"calcifi\w*", r"granulom\w*", r"hyperinflat\w*",
    r"hyperexpan\w*", r"hyperlucen\w*", r"overinflat\w*", r"flatten\w*", r"bullae", r"bullous", r"blebs?",
    r"hernia\w*", r"copd", r"chronic obstructive", r"asthma", r"bronchit\w*", r"bronchiectasis", r"bronchiolitis",
    r"airways? disease", r"thickening", r"cephalization", r"aspiration", r"contusion", r"atheroscl\w*",
    r"osteopenia", r"osteoporo\w*", r"metasta\w*", r"pneumomediastinum", r"pneumoperitoneum", r"free air",
    r"lucen\w*", r"inflam\w*", r"hypertension", r"tortuo\w*", r"ectatic", r"ectasia", r"unfold\w*",
    r"deformit\w*", r"hemorrhage", r"hematoma", r"scar\w*", r"fibros\w*", r"fibrotic", r"cicatri\w*",
    r"volume loss", r"low (?:lung )?volumes?", r"hypoinflat\w*", r"hypoventilat\w*", r"cysts?", r"cystic",
    r"aneurysm\w*", r"lesions?", r"sarcoid\w*", r"adenopathy", r"lymphadenopathy", r"crowding",
    r"(?:lobectomy|pneumonectomy|mastectomy)", r"interstitial (?:lung )?disease", r"spurring",
    r"(?:dextro|levo)?curvature", r"(?:dextro|levo)scolio\w*", r"foreign bod(?:y|ies)", r"fusion",
]

# --- context cues, searched in the scope of a mention (its clause, cut at SCOPE_BREAK) ---------------------------

# "cannot exclude X", "X is not excluded": uncertain, checked before negation because they contain a negation word.
UNCERTAIN_FIRST = (r"\b(?:cannot|can not|could not|can't|not|difficult to|unable to|may not|hard to) (?:\w+ ){0,2}?"
                   r"(?:exclude[sd]?|rule[sd]? out|ruled out|excluded)\b")

# Phrases that contain a negation word but do not negate ("no change in the effusion").
PSEUDO_NEGATION = (r"\b(?:no (?:\w+ ){0,2}?(?:change|increase|decrease|progression|worsening|improvement|difference)"
                   r"|not (?:\w+ )?(?:changed|increased|improved|decreased)|without (?:\w+ )?change|no longer \w+ed"
                   r" (?:but|and)|not only|gram negative)\b")

NEGATION_PRE = (r"\b(?:no|not|without|negative for|free of|clear of|absence of|absent|resolution of|resolved|"
                r"removal of|removed|ruled out|nor|neither|none|disappear\w*|clearing of|rather than|exclude[sd]?|"
                r"negative)\b")
NEGATION_POST = (r"\b(?:(?:is|are|was|were|has been|have been) not|not|no longer) (?:\w+ ){0,2}?(?:seen|identified|"
                 r"present|visuali[sz]ed|demonstrated|appreciated|evident|noted|detected|apparent|shown|"
                 r"definitely seen)\b|\b(?:has|have) (?:\w+ )?(?:resolved|cleared)\b|\bresolved\b|\bremoved\b|"
                 r"\b(?:is|are) (?:now )?(?:absent|gone|negative)\b|\bno longer\b")

UNCERTAIN_PRE = (r"\b(?:may|might|could|possibl[ey]|probabl[ey]|likely|presum\w*|suspect\w*|suspicious|suspicion|"
                 r"concern(?:ing)? for|worrisome|question(?:able)?|questioned|suggest\w*|consider\w*|differential|"
                 r"equivocal|indeterminate|uncertain|versus|vs|favou?r\w*|either|possibility|potential\w*|"
                 r"correlat\w* (?:\w+ )?for|not (?:well )?(?:visuali[sz]ed|evaluated|assessed)|poorly (?:visuali[sz]ed"
                 r"|evaluated)|seems?|resembl\w*|borderline|atypical|cannot|maybe)\b|\?")
UNCERTAIN_POST = (r"^\W*(?:\w+\W+){0,3}?(?:(?:is|are|was|were|remains?) (?:\w+ )?(?:possible|likely|probable|"
                  r"suspected|questioned|questionable|favou?red|uncertain|a consideration)|(?:may|could|might) be "
                  r"(?:present|seen)|\?)|^\W*(?:or|versus|vs)\b")
# "or" / "versus" right before a mention ("atelectasis or pneumonia"): uncertain when not negated.
UNCERTAIN_OR_BEFORE = r"\b(?:or|versus|vs|and/or)\s+(?:\w+\s+){0,2}$"

_SIZE = (r"mild|mildly|moderate|moderately|severe|small|stable|new|increased|increasing|persistent|unchanged|slight|"
         r"slightly|minimal|trace|chronic|old|healed|bibasilar|patchy|streaky|focal|subsegmental|residual|"
         r"decreased|decreasing|improved|improving|worsening|worsened|enlarged|large|continued")
SCOPE_BREAK = (r"\b(?:but|however|although|though|whereas|while|except|aside from|apart from|other than|besides|"
               r"which|there (?:is|are|has been|have been|was|were)|(?<!consistent )(?<!compatible )with|"
               r"and (?:there|the|a|an|" + _SIZE + r")|otherwise|in addition|also|now|again)\b|, (?:and )?(?:"
               + _SIZE.replace("|large", "").replace("|focal", "") + r")\b"
               r"|\b(?:is|are) (?:clear(?! of)|normal|unremarkable|intact)\b")
# Where the size words of an anatomy mention stop being about it ("mediastinum ... secondary to a large hernia").
ANATOMY_BREAK = (r"\b(?:but|however|although|though|whereas|while|except|which|there (?:is|are)|and (?:there|the|a|an)"
                 r"|with|also|secondary|due|most|consistent|compatible|related|from|given)\b|[,(]")
# Words a mention's scope never crosses after it either (the subject of the next statement begins).
POST_BREAK = (r"\b(?:but|however|although|though|whereas|while|except|which|there (?:is|are)|and (?:there|the|a|an)"
              r"|with|also)\b|,")
