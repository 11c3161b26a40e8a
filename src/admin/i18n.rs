//! Languages of admin API messages: the request's `Accept-Language` picks en-US, zh-CN or ja-JP
//! (English when absent or unknown, unlike GPT-Load's Chinese default), and a table translates
//! every success and validation message by id. Error `code`s never change with the language.

use std::fmt::Display;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::ACCEPT_LANGUAGE;
use actix_web::middleware::Next;
use actix_web::Error;
use gpt_load_actors::settings::SettingKey;

/// A supported language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    EnUs,
    ZhCn,
    JaJp,
}

tokio::task_local! {
    /// The language of the request being handled. Set by [`language`] around each `/api` call, so
    /// messages built anywhere inside a handler (validation helpers included) use it without
    /// threading a parameter through every function.
    static LANG: Lang;
}

impl Lang {
    /// Reads an `Accept-Language` value: the first tag only, q-values stripped; `zh*` → zh-CN,
    /// `ja*` → ja-JP, `en*` → en-US, anything else → English.
    pub fn from_header(value: Option<&str>) -> Lang {
        let first = value
            .and_then(|v| v.split(',').next())
            .and_then(|tag| tag.split(';').next())
            .map(|tag| tag.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if first.starts_with("zh") {
            Lang::ZhCn
        } else if first.starts_with("ja") {
            Lang::JaJp
        } else {
            Lang::EnUs
        }
    }

    /// The language of the request being handled (English outside a request).
    pub fn current() -> Lang {
        LANG.try_with(|lang| *lang).unwrap_or_default()
    }
}

/// Middleware: runs the rest of the request with the language its `Accept-Language` asks for.
pub async fn language(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let lang = Lang::from_header(
        req.headers()
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    LANG.scope(lang, next.call(req)).await
}

/// Runs `fut` with `lang` as the current language (for tests and background work).
pub async fn with_lang<F: std::future::Future>(lang: Lang, fut: F) -> F::Output {
    LANG.scope(lang, fut).await
}

macro_rules! messages {
    ($($id:ident => ($en:literal, $zh:literal, $ja:literal),)*) => {
        /// Every translatable message, by id. `{name}` marks a placeholder filled by [`tf`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Msg { $($id,)* }

        impl Msg {
            /// Every message id, for completeness checks.
            pub const ALL: &'static [Msg] = &[$(Msg::$id,)*];

            /// The text in `lang`.
            pub fn text(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $(
                        (Msg::$id, Lang::EnUs) => $en,
                        (Msg::$id, Lang::ZhCn) => $zh,
                        (Msg::$id, Lang::JaJp) => $ja,
                    )*
                }
            }
        }
    };
}

messages! {
    Success => ("Success", "操作成功", "成功"),
    GroupDeleted => ("Group and related keys deleted successfully", "分组及相关密钥删除成功", "グループと関連キーを削除しました"),
    GroupOrderSaved => ("Group order saved", "分组排序已保存", "グループの並び順を保存しました"),
    SubGroupsAdded => ("Sub groups added successfully", "子分组添加成功", "サブグループを追加しました"),
    SubGroupWeightUpdated => ("Sub group weight updated successfully", "子分组权重更新成功", "サブグループの重みを更新しました"),
    SubGroupRemoved => ("Sub group deleted successfully", "子分组删除成功", "サブグループを削除しました"),
    KeysRestored => ("{count} keys restored", "已恢复 {count} 个密钥", "{count} 個のキーを復元しました"),
    InvalidKeysCleared => ("{count} invalid keys cleared", "已清除 {count} 个无效密钥", "{count} 個の無効なキーを削除しました"),
    KeysCleared => ("{count} keys cleared", "已清除 {count} 个密钥", "{count} 個のキーを削除しました"),
    SettingsUpdated => ("Settings updated successfully. Configuration will be reloaded in the background across all instances.", "设置更新成功，配置将在后台于所有实例中重新加载。", "設定を更新しました。設定はすべてのインスタンスでバックグラウンドで再読み込みされます。"),
    KeyDisabled => ("Key disabled", "密钥已禁用", "キーを無効化しました"),
    KeyEnabled => ("Key enabled", "密钥已启用", "キーを有効化しました"),
    CooldownReset => ("Cooldown reset", "冷却已重置", "クールダウンをリセットしました"),
    KeyNotCooling => ("The key was not cooling down", "该密钥未处于冷却中", "このキーはクールダウン中ではありません"),

    InvalidGroupId => ("Invalid group ID format", "无效的分组ID格式", "無効なグループID形式です"),
    InvalidSubGroupId => ("Invalid sub-group ID", "无效的子分组ID", "無効なサブグループIDです"),
    InvalidKeyId => ("Invalid key ID format", "无效的密钥ID格式", "無効なキーID形式です"),
    GroupNotFound => ("Group not found", "分组不存在", "グループが見つかりません"),
    GroupIdNotFound => ("Group {id} not found", "分组 {id} 不存在", "グループ {id} が見つかりません"),
    SubGroupNotFound => ("Sub group not found", "子分组不存在", "サブグループが見つかりません"),
    KeyNotFound => ("Key not found", "密钥不存在", "キーが見つかりません"),

    GroupNameInvalid => ("Invalid group name: use 1-100 lowercase letters, digits, '_' or '-'", "无效的分组名称（name）：只能使用 1-100 个小写字母、数字、'_' 或 '-'", "無効なグループ名（name）：1〜100 文字の小文字、数字、'_'、'-' のみ使用できます"),
    GroupNameTaken => ("A group with this name already exists", "同名分组已存在", "同じ名前のグループが既に存在します"),
    ChannelTypeInvalid => ("Invalid channel type. Supported types: {types}", "无效的渠道类型。支持的类型：{types}", "無効なチャネルタイプです。対応タイプ：{types}"),
    GroupTypeInvalid => ("group_type must be 'standard' or 'aggregate'", "group_type 必须是 'standard' 或 'aggregate'", "group_type は 'standard' または 'aggregate' である必要があります"),
    TestModelRequired => ("test_model is required", "test_model 为必填项", "test_model は必須です"),
    UpstreamsNotArray => ("upstreams must be a JSON array", "upstreams 必须是 JSON 数组", "upstreams は JSON 配列である必要があります"),
    UpstreamsEmpty => ("At least one upstream is required", "至少需要一个上游地址", "上流が少なくとも1つ必要です"),
    UpstreamUrlInvalid => ("Each upstream needs a url starting with http:// or https://", "每个上游的 url 必须以 http:// 或 https:// 开头", "各上流の url は http:// または https:// で始まる必要があります"),
    UpstreamWeightInvalid => ("Upstream weight must be an integer", "上游权重必须是整数", "上流の重みは整数である必要があります"),
    UpstreamWeightNegative => ("Upstream weight must not be negative", "上游权重不能为负数", "上流の重みは負にできません"),
    UpstreamNoPositiveWeight => ("At least one upstream must have a weight above 0", "至少一个上游的权重必须大于 0", "少なくとも1つの上流の重みが 0 より大きい必要があります"),
    ValidationEndpointInvalid => ("validation_endpoint must be a path starting with '/'", "validation_endpoint 必须是以 '/' 开头的路径", "validation_endpoint は '/' で始まるパスである必要があります"),
    ParamOverridesNotObject => ("param_overrides must be a JSON object", "param_overrides 必须是 JSON 对象", "param_overrides は JSON オブジェクトである必要があります"),
    RedirectRulesNotObject => ("model_redirect_rules must be a JSON object", "model_redirect_rules 必须是 JSON 对象", "model_redirect_rules は JSON オブジェクトである必要があります"),
    RedirectRuleEmpty => ("Model redirect rules need a non-empty source and target", "模型重定向规则的源和目标都不能为空", "モデルリダイレクトルールの元と先は空にできません"),
    AggregateNoRedirect => ("Aggregate groups do not support model redirect rules", "聚合分组不支持模型重定向规则", "集約グループはモデルリダイレクトルールをサポートしていません"),
    HeaderNameInvalid => ("Invalid header name: {name}", "无效的请求头名称：{name}", "無効なヘッダー名：{name}"),
    DuplicateHeader => ("Duplicate header: {name}", "重复的请求头：{name}", "重複したヘッダー：{name}"),
    ConfigNotObject => ("Invalid config format: config must be a JSON object", "配置格式无效：config 必须是 JSON 对象", "無効な設定形式：config は JSON オブジェクトである必要があります"),
    ConfigInvalid => ("Invalid config format: {reason}", "配置格式无效：{reason}", "無効な設定形式：{reason}"),
    GroupReferenced => ("This group is referenced by {count} aggregate group(s); its channel type and validation endpoint cannot change", "该分组被 {count} 个聚合分组引用，无法修改渠道类型和验证端点", "このグループは {count} 個の集約グループから参照されているため、チャネルタイプと検証エンドポイントは変更できません"),

    UnknownSetting => ("unknown setting '{key}'", "未知的设置项 '{key}'", "不明な設定項目 '{key}'"),
    UnknownConfigField => ("unknown config field: '{key}'", "未知的配置字段：'{key}'", "不明な設定フィールド：'{key}'"),
    SettingNotInteger => ("setting '{key}' must be an integer", "设置项 '{key}' 必须是整数", "設定項目 '{key}' は整数である必要があります"),
    SettingNotBoolean => ("setting '{key}' must be a boolean", "设置项 '{key}' 必须是布尔值", "設定項目 '{key}' は真偽値である必要があります"),
    SettingNotString => ("setting '{key}' must be a string", "设置项 '{key}' 必须是字符串", "設定項目 '{key}' は文字列である必要があります"),
    SettingBelowMin => ("setting '{key}' must be at least {min}", "设置项 '{key}' 不能小于 {min}", "設定項目 '{key}' は {min} 以上である必要があります"),
    SettingAboveMax => ("setting '{key}' must be at most {max}", "设置项 '{key}' 不能大于 {max}", "設定項目 '{key}' は {max} 以下である必要があります"),
    SettingRequired => ("setting '{key}' is required", "设置项 '{key}' 为必填项", "設定項目 '{key}' は必須です"),
    SettingInvalid => ("setting '{key}' is invalid: {reason}", "设置项 '{key}' 无效：{reason}", "設定項目 '{key}' が無効です：{reason}"),
    SettingNotOverridable => ("setting '{key}' cannot be overridden per group", "设置项 '{key}' 不能在分组中覆盖", "設定項目 '{key}' はグループごとに上書きできません"),

    ReorderEmpty => ("items must not be empty", "items 不能为空", "items は空にできません"),
    ReorderInvalidId => ("items[{index}].id must be a positive integer", "items[{index}].id 必须是正整数", "items[{index}].id は正の整数である必要があります"),
    ReorderNegativeSort => ("items[{index}].sort must not be negative", "items[{index}].sort 不能为负数", "items[{index}].sort は負にできません"),
    ReorderDuplicateId => ("Duplicate group id {id} in items", "items 中存在重复的分组ID {id}", "items に重複したグループID {id} があります"),
    CopyModeInvalid => ("copy_keys must be one of 'none', 'valid_only' or 'all'", "copy_keys 必须是 'none'、'valid_only' 或 'all' 之一", "copy_keys は 'none'、'valid_only'、'all' のいずれかである必要があります"),
    CopyNameExhausted => ("No free name left for a copy of this group", "没有可用的副本分组名称", "このグループのコピーに使える名前がありません"),

    NotAggregate => ("Group is not an aggregate group", "该分组不是聚合分组", "このグループは集約グループではありません"),
    SubGroupsEmpty => ("sub_groups must not be empty", "sub_groups 不能为空", "sub_groups は空にできません"),
    SubGroupIdRequired => ("sub_groups[{index}].group_id must be a positive integer", "sub_groups[{index}].group_id 必须是正整数", "sub_groups[{index}].group_id は正の整数である必要があります"),
    WeightRange => ("weight must be between 0 and 1000", "权重必须在 0 到 1000 之间", "重みは 0〜1000 の範囲である必要があります"),
    SubGroupMissing => ("Sub group {id} does not exist", "子分组 {id} 不存在", "サブグループ {id} が存在しません"),
    SubGroupIsAggregate => ("Group {id} is an aggregate group and cannot be a member", "分组 {id} 是聚合分组，不能作为子分组", "グループ {id} は集約グループのためメンバーにできません"),
    SubGroupChannelMismatch => ("Group {id} has channel type '{found}', the aggregate needs '{expected}'", "分组 {id} 的渠道类型为 '{found}'，聚合分组需要 '{expected}'", "グループ {id} のチャネルタイプは '{found}' ですが、集約グループには '{expected}' が必要です"),
    SubGroupEndpointMismatch => ("Group {id} validates with '{found}', the other members with '{expected}'", "分组 {id} 的验证端点为 '{found}'，其他成员为 '{expected}'", "グループ {id} の検証エンドポイントは '{found}' ですが、他のメンバーは '{expected}' です"),
    SubGroupExists => ("Sub group {id} already exists", "子分组 {id} 已存在", "サブグループ {id} は既に存在します"),
    SubGroupDuplicate => ("Sub group {id} is listed twice", "子分组 {id} 重复", "サブグループ {id} が重複しています"),

    GroupIdRequired => ("group_id query parameter is required", "缺少 group_id 查询参数", "group_id クエリパラメータが必要です"),
    GroupIdInvalid => ("Invalid group_id format", "无效的 group_id 格式", "無効な group_id 形式です"),
    GroupIdFieldRequired => ("group_id is required and must be a positive integer", "group_id 为必填项且必须是正整数", "group_id は必須で、正の整数である必要があります"),
    KeyStatusInvalid => ("status must be 'active' or 'invalid'", "status 必须是 'active' 或 'invalid'", "status は 'active' または 'invalid' である必要があります"),
    ExportStatusInvalid => ("status must be 'all', 'active', 'invalid' or 'disabled'", "status 必须是 'all'、'active'、'invalid' 或 'disabled'", "status は 'all'、'active'、'invalid'、'disabled' のいずれかである必要があります"),
    KeyFilterStatusInvalid => ("status must be 'active', 'invalid' or 'disabled'", "status 必须是 'active'、'invalid' 或 'disabled'", "status は 'active'、'invalid'、'disabled' のいずれかである必要があります"),
    KeyStatusChoice => ("status must be 'active' or 'disabled'", "status 必须是 'active' 或 'disabled'", "status は 'active' または 'disabled' である必要があります"),
    KeysTextEmpty => ("Keys text cannot be empty", "密钥文本不能为空", "キーのテキストは空にできません"),
    NoValidKeys => ("No valid keys found in the input", "输入中没有有效的密钥", "入力に有効なキーがありません"),
    BatchTooLarge => ("Batch size exceeds the limit of {limit} keys; use the async import for more", "批量大小超过 {limit} 个密钥的限制，请使用异步导入", "バッチサイズが上限の {limit} キーを超えています。非同期インポートを使用してください"),
    KeyUnfitOnLine => ("Line {line}: a key contains the character {char}; keys must be printable ASCII without spaces or control characters. Nothing was imported", "第 {line} 行：密钥包含字符 {char}；密钥只能由可打印的 ASCII 字符组成，不能含空白或控制字符。未导入任何密钥", "{line} 行目：キーに文字 {char} が含まれています。キーは空白や制御文字を含まない印字可能な ASCII 文字のみです。何もインポートされていません"),
    KeyUnfitInEntry => ("Entry {entry}: a key contains the character {char}; keys must be printable ASCII without spaces or control characters. Nothing was imported", "第 {entry} 项：密钥包含字符 {char}；密钥只能由可打印的 ASCII 字符组成，不能含空白或控制字符。未导入任何密钥", "{entry} 番目の項目：キーに文字 {char} が含まれています。キーは空白や制御文字を含まない印字可能な ASCII 文字のみです。何もインポートされていません"),
    NotesTooLong => ("notes must be at most 255 characters", "备注最多 255 个字符", "メモは 255 文字以内である必要があります"),
    KeyNotInGroup => ("Key does not exist in this group or has been removed.", "密钥不存在于该分组或已被删除。", "キーはこのグループに存在しないか、削除されています。"),

    TaskInProgress => ("A task is already running, please wait", "已有任务正在运行，请稍候", "タスクが既に実行中です。しばらくお待ちください"),
    NoKeysToValidate => ("No keys to validate in group {name}", "分组 {name} 中没有需要验证的密钥", "グループ {name} に検証するキーがありません"),
    MultipartInvalid => ("Invalid multipart upload: {reason}", "无效的文件上传：{reason}", "無効なファイルアップロード：{reason}"),
    FileRequired => ("A .txt file is required in field 'file'", "字段 'file' 需要一个 .txt 文件", "フィールド 'file' に .txt ファイルが必要です"),
    FileNotTxt => ("Only .txt files can be imported", "只能导入 .txt 文件", ".txt ファイルのみインポートできます"),
    FileNotUtf8 => ("The uploaded file is not UTF-8 text", "上传的文件不是 UTF-8 文本", "アップロードされたファイルは UTF-8 テキストではありません"),

    ProxyKeyRequired => ("Proxy key is required", "需要代理密钥", "プロキシキーが必要です"),
    ProxyKeyInvalid => ("Invalid or unauthorized proxy key", "代理密钥无效或未授权", "プロキシキーが無効か、権限がありません"),


    InvalidKeysTip => ("Invalid Keys", "无效密钥", "無効なキー"),
    ChartSuccess => ("Success", "成功", "成功"),
    ChartFailed => ("Failed", "失败", "失敗"),
    WarnLogsShedType => ("Request logs", "请求日志", "リクエストログ"),
    WarnLogsShed => ("{n} request log records were dropped since start: the database could not keep up and the in-memory buffer was full", "自启动以来已丢弃 {n} 条请求日志：数据库写入跟不上，内存缓冲区已满", "起動以降 {n} 件のリクエストログを破棄しました：データベースの書き込みが追いつかず、メモリバッファが満杯でした"),
    WarnLogsShedSuggestion => ("Check the database's health and latency, or raise REQUEST_LOG_BUFFER_SIZE", "请检查数据库的健康状况和延迟，或调大 REQUEST_LOG_BUFFER_SIZE", "データベースの状態と遅延を確認するか、REQUEST_LOG_BUFFER_SIZE を大きくしてください"),
    WarnPoolFloorType => ("Key pools", "密钥池", "キープール"),
    WarnPoolFloor => ("Failing keys were kept in service {n} times since start, because blacklisting them would have left their group below its usable-key floor", "自启动以来有 {n} 次故障密钥被保留使用，因为拉黑它们会使分组低于可用密钥下限", "起動以降 {n} 回、故障したキーを使用し続けました。ブラックリストに入れるとグループの利用可能キーが下限を下回るためです"),
    WarnPoolFloorSuggestion => ("Check the keys' state and last failure in the groups' key lists, and add working keys", "请在分组的密钥列表中查看密钥状态和最近一次失败原因，并添加可用的密钥", "グループのキー一覧でキーの状態と直近の失敗を確認し、有効なキーを追加してください"),
    WarnAuthKeyType => ("AUTH_KEY", "管理密钥 (AUTH_KEY)", "管理キー (AUTH_KEY)"),
    WarnEncryptionKeyType => ("ENCRYPTION_KEY", "加密密钥 (ENCRYPTION_KEY)", "暗号化キー (ENCRYPTION_KEY)"),
    WarnGlobalProxyKeyType => ("Global Proxy Key #{n}", "全局代理密钥 #{n}", "グローバルプロキシキー #{n}"),
    WarnGroupProxyKeyType => ("Group Proxy Key [{name}] #{n}", "分组代理密钥 [{name}] #{n}", "グループプロキシキー [{name}] #{n}"),
    WarnEncryptionMissing => ("ENCRYPTION_KEY is not set: upstream keys are stored in plain text", "未设置 ENCRYPTION_KEY：上游密钥以明文存储", "ENCRYPTION_KEY が設定されていません：上流キーは平文で保存されています"),
    WarnEncryptionMissingSuggestion => ("Set ENCRYPTION_KEY to a long random string and run migrate-keys", "将 ENCRYPTION_KEY 设置为较长的随机字符串并运行 migrate-keys", "ENCRYPTION_KEY に長いランダムな文字列を設定し、migrate-keys を実行してください"),
    WarnTooShort => ("{what} is shorter than 16 characters", "{what} 少于 16 个字符", "{what} は 16 文字未満です"),
    WarnShort => ("{what} is shorter than 32 characters", "{what} 少于 32 个字符", "{what} は 32 文字未満です"),
    WarnCommonWord => ("{what} contains a common word or pattern", "{what} 包含常见单词或模式", "{what} に一般的な単語やパターンが含まれています"),
    WarnLowVariety => ("{what} uses fewer than 3 kinds of characters", "{what} 使用的字符类型少于 3 种", "{what} に使われている文字の種類が 3 種類未満です"),
    WarnSuggestion => ("Use at least 32 random characters mixing upper case, lower case, digits and symbols", "请使用至少 32 个混合大小写字母、数字和符号的随机字符", "大文字・小文字・数字・記号を混ぜた 32 文字以上のランダムな文字列を使用してください"),
    EncDataNotEncrypted => ("ENCRYPTION_KEY is set but the stored keys are not encrypted", "已设置 ENCRYPTION_KEY，但存储的密钥未加密", "ENCRYPTION_KEY が設定されていますが、保存されたキーは暗号化されていません"),
    EncDataNotEncryptedSuggestion => ("Run: gpt-load migrate-keys --to <ENCRYPTION_KEY>", "请运行：gpt-load migrate-keys --to <ENCRYPTION_KEY>", "次を実行してください：gpt-load migrate-keys --to <ENCRYPTION_KEY>"),
    EncKeyNotConfigured => ("The stored keys are encrypted but ENCRYPTION_KEY is not set", "存储的密钥已加密，但未设置 ENCRYPTION_KEY", "保存されたキーは暗号化されていますが、ENCRYPTION_KEY が設定されていません"),
    EncKeyNotConfiguredSuggestion => ("Set ENCRYPTION_KEY to the key the data was encrypted with, or run migrate-keys --from <old key>", "请将 ENCRYPTION_KEY 设置为加密数据时使用的密钥，或运行 migrate-keys --from <旧密钥>", "データの暗号化に使ったキーを ENCRYPTION_KEY に設定するか、migrate-keys --from <旧キー> を実行してください"),
    EncKeyMismatch => ("ENCRYPTION_KEY does not match the key the stored data was encrypted with", "ENCRYPTION_KEY 与加密存储数据时使用的密钥不一致", "ENCRYPTION_KEY が保存データの暗号化に使われたキーと一致しません"),
    EncKeyMismatchSuggestion => ("Restore the previous ENCRYPTION_KEY, or run migrate-keys --from <old key> --to <new key>", "请恢复之前的 ENCRYPTION_KEY，或运行 migrate-keys --from <旧密钥> --to <新密钥>", "以前の ENCRYPTION_KEY に戻すか、migrate-keys --from <旧キー> --to <新キー> を実行してください"),

    CategoryBasic => ("Basic", "基础参数", "基本設定"),
    CategoryRequest => ("Request Settings", "请求设置", "リクエスト設定"),
    CategoryKey => ("Key Configuration", "密钥配置", "キー設定"),
}

/// The message in the current request's language.
pub fn t(msg: Msg) -> String {
    msg.text(Lang::current()).to_string()
}

/// The message in the current language with `{name}` placeholders filled.
pub fn tf(msg: Msg, args: &[(&str, &dyn Display)]) -> String {
    let mut text = msg.text(Lang::current()).to_string();
    for (name, value) in args {
        text = text.replace(&format!("{{{name}}}"), &value.to_string());
    }
    text
}

/// Name and description of a system setting in `lang`; English comes from the setting table. The
/// match is exhaustive, so a new setting does not compile until it is translated.
pub fn setting_text(key: SettingKey, lang: Lang) -> Option<(&'static str, &'static str)> {
    let (zh, ja) = match key {
        SettingKey::AppUrl => (
            ("项目地址", "项目的基础 URL，用于拼接分组终端节点地址。"),
            (
                "プロジェクト URL",
                "グループのエンドポイントアドレスを組み立てるためのプロジェクトのベース URL。",
            ),
        ),
        SettingKey::ProxyKeys => (
            (
                "全局代理密钥",
                "用于访问所有分组的全局代理密钥，多个用英文逗号分隔。",
            ),
            (
                "グローバルプロキシキー",
                "すべてのグループにアクセスできるグローバルプロキシキー。カンマ区切り。",
            ),
        ),
        SettingKey::RequestLogRetentionDays => (
            ("日志保留时长（天）", "请求日志的保留天数，0 为永久保留。"),
            ("ログ保持日数", "リクエストログを保持する日数。0 は無期限。"),
        ),
        SettingKey::RequestLogWriteIntervalMinutes => (
            (
                "日志延迟写入周期（分钟）",
                "请求日志等待写入数据库的最长分钟数（服务器默认 1 秒内写入，见 REQUEST_LOG_MAX_DELAY_MS），0 为立即写入。",
            ),
            (
                "ログ書き込み間隔（分）",
                "リクエストログが書き込みを待つ最長時間（分）。サーバーは既定で 1 秒以内に書き込む（REQUEST_LOG_MAX_DELAY_MS）。0 は即時。",
            ),
        ),
        SettingKey::EnableRequestBodyLogging => (
            ("记录请求体", "在请求日志中保存请求体和 User-Agent。"),
            (
                "リクエストボディの記録",
                "リクエストログにリクエストボディと User-Agent を保存します。",
            ),
        ),
        SettingKey::RequestTimeout => (
            ("请求超时（秒）", "非流式请求的整体超时时间（秒）。"),
            (
                "リクエストタイムアウト（秒）",
                "非ストリーミングリクエスト全体のタイムアウト（秒）。",
            ),
        ),
        SettingKey::ConnectTimeout => (
            ("连接超时（秒）", "与上游建立连接的超时时间（秒）。"),
            (
                "接続タイムアウト（秒）",
                "上流への接続のタイムアウト（秒）。",
            ),
        ),
        SettingKey::IdleConnTimeout => (
            ("空闲连接超时（秒）", "空闲上游连接的保留时间（秒）。"),
            (
                "アイドル接続タイムアウト（秒）",
                "アイドル状態の上流接続を保持する時間（秒）。",
            ),
        ),
        SettingKey::ResponseHeaderTimeout => (
            ("响应头超时（秒）", "等待上游响应头的最长时间（秒）。"),
            (
                "レスポンスヘッダータイムアウト（秒）",
                "上流のレスポンスヘッダーを待つ最大時間（秒）。",
            ),
        ),
        SettingKey::MaxIdleConns => (
            ("最大空闲连接数", "上游空闲连接的总数上限。"),
            ("最大アイドル接続数", "上流のアイドル接続の合計上限。"),
        ),
        SettingKey::MaxIdleConnsPerHost => (
            ("每主机最大空闲连接数", "每个上游主机的空闲连接数上限。"),
            (
                "ホストごとの最大アイドル接続数",
                "上流ホストごとのアイドル接続の上限。",
            ),
        ),
        SettingKey::ProxyUrl => (
            (
                "代理服务器地址",
                "上游请求使用的 HTTP/HTTPS/SOCKS5 代理，留空则使用环境变量。",
            ),
            (
                "プロキシサーバー URL",
                "上流リクエストに使う HTTP/HTTPS/SOCKS5 プロキシ。空の場合は環境変数を使用。",
            ),
        ),
        SettingKey::MaxRetries => (
            ("最大重试次数", "请求失败后使用其他密钥重试的额外次数。"),
            ("最大リトライ回数", "失敗後に別のキーで再試行する追加回数。"),
        ),
        SettingKey::BlacklistThreshold => (
            ("黑名单阈值", "密钥累计失败多少次后被拉黑，0 为永不拉黑。"),
            (
                "ブラックリストしきい値",
                "キーがブラックリストに入るまでの失敗回数。0 は無効。",
            ),
        ),
        SettingKey::FailoverStatusCodes => (
            (
                "故障转移状态码",
                "计为密钥失败并触发重试的上游状态码，例如 400-403,405-999。",
            ),
            (
                "フェイルオーバーステータスコード",
                "キーの失敗として扱い再試行する上流ステータスコード。例：400-403,405-999。",
            ),
        ),
        SettingKey::KeyValidationIntervalMinutes => (
            ("密钥验证间隔（分钟）", "后台验证分组无效密钥的间隔分钟数（由主节点执行）；0 表示关闭。"),
            (
                "キー検証間隔（分）",
                "グループの無効なキーをバックグラウンドで検証する間隔（分、リーダーが実行）。0 で無効になります。",
            ),
        ),
        SettingKey::KeyValidationConcurrency => (
            ("密钥验证并发数", "每个分组并行验证的密钥数。"),
            (
                "キー検証の同時実行数",
                "グループごとに並行して検証するキーの数。",
            ),
        ),
        SettingKey::KeyValidationTimeoutSeconds => (
            ("密钥验证超时（秒）", "单个验证请求的超时时间（秒）。"),
            (
                "キー検証タイムアウト（秒）",
                "1 回の検証リクエストのタイムアウト（秒）。",
            ),
        ),
        SettingKey::RateLimitCooldownSeconds => (
            ("限流冷却（秒）", "密钥收到无 Retry-After 的 429 后首次休息的秒数，每次重复翻倍。"),
            ("レート制限クールダウン（秒）", "Retry-After のない 429 を受けたキーの最初の休止秒数。繰り返すたびに倍になります。"),
        ),
        SettingKey::RateLimitCooldownMaxSeconds => (
            ("限流冷却上限（秒）", "无 Retry-After 时被限流密钥的最长休息秒数。"),
            ("レート制限クールダウン上限（秒）", "Retry-After のないレート制限キーの最長休止秒数。"),
        ),
        SettingKey::RateLimitScope => (
            ("限流范围", "429 让什么休息：`model` 只让该密钥在本次请求的模型上休息（服务商按模型计配额），`key` 让整个密钥休息。整个密钥额度耗尽的错误总是作用于整个密钥。"),
            ("レート制限の範囲", "429 で何を休止させるか：`model` はリクエストのモデルについてのみキーを休止（プロバイダーはモデルごとに割り当てを数えます）、`key` はキー全体を休止。キー全体の割り当て切れエラーは常にキー全体に効きます。"),
        ),
        SettingKey::RetryAfterMaxSeconds => (
            ("Retry-After 上限（秒）", "上游 Retry-After 可对密钥施加的最长休息秒数。"),
            ("Retry-After 上限（秒）", "上流の Retry-After がキーに課せる最長休止秒数。"),
        ),
        SettingKey::UpstreamErrorCooldownSeconds => (
            ("上游错误冷却（秒）", "密钥遇到 5xx、连接错误或超时后首次休息的秒数，每次重复翻倍；0 为关闭。"),
            ("上流エラークールダウン（秒）", "5xx・接続エラー・タイムアウト後のキーの最初の休止秒数。繰り返すたびに倍になります。0 で無効。"),
        ),
        SettingKey::UpstreamErrorCooldownMaxSeconds => (
            ("上游错误冷却上限（秒）", "上游错误后的最长休息秒数。"),
            ("上流エラークールダウン上限（秒）", "上流エラー後の最長休止秒数。"),
        ),
        SettingKey::UpstreamErrorBlacklist => (
            ("上游错误计入拉黑", "将 5xx、连接错误和超时计入拉黑阈值。"),
            ("上流エラーをブラックリストに計上", "5xx・接続エラー・タイムアウトをブラックリストしきい値に数えます。"),
        ),
        SettingKey::MinUsableKeysPercent => (
            ("可用密钥下限（%）", "自动拉黑永远不会让分组中轮换的密钥低于该百分比（至少一个）；被保留但仍以失效方式失败的密钥只在没有其他密钥时才会被使用。"),
            ("利用可能キーの下限（%）", "自動ブラックリストでローテーションから外さないグループのキーの割合（最低 1 つ）。残されたキーが無効として失敗し続ける場合は、他のキーがないときだけ使われます。"),
        ),
        SettingKey::FirstByteTimeoutSeconds => (
            ("首字节超时（秒）", "等待上游首个响应字节的秒数，超时后换用其他密钥重试；0 为关闭。"),
            ("最初のバイトのタイムアウト（秒）", "上流の最初の応答バイトを待つ秒数。超えると別のキーで再試行します。0 で無効。"),
        ),
        SettingKey::StreamIncludeUsage => (
            ("始终统计流式用量", "为未携带 stream_options.include_usage 的 OpenAI 流式对话请求加上该参数，使 Token 用量始终可知。客户端会在 [DONE] 之前多收到一个 choices 为空、带有用量的数据块。"),
            ("ストリームの使用量を常に取得", "stream_options.include_usage のない OpenAI のストリーミングチャット要求にそれを追加し、トークン使用量を常に把握します。クライアントは [DONE] の前に、choices が空で使用量を含むチャンクを 1 つ余分に受け取ります。"),
        ),
    };
    match lang {
        Lang::ZhCn => Some(zh),
        Lang::JaJp => Some(ja),
        Lang::EnUs => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_tag_decides_with_prefix_matching() {
        assert_eq!(Lang::from_header(None), Lang::EnUs);
        assert_eq!(Lang::from_header(Some("")), Lang::EnUs);
        assert_eq!(Lang::from_header(Some("fr-FR,zh-CN;q=0.9")), Lang::EnUs);
        assert_eq!(Lang::from_header(Some("zh-TW;q=0.8,en")), Lang::ZhCn);
        assert_eq!(Lang::from_header(Some("zh")), Lang::ZhCn);
        assert_eq!(Lang::from_header(Some(" ja ,en")), Lang::JaJp);
        assert_eq!(Lang::from_header(Some("en-GB")), Lang::EnUs);
    }

    #[test]
    fn placeholders_survive_in_every_language() {
        for msg in Msg::ALL {
            let en = msg.text(Lang::EnUs);
            for lang in [Lang::ZhCn, Lang::JaJp] {
                let other = msg.text(lang);
                assert!(!other.is_empty(), "{msg:?}");
                for part in en.split('{').skip(1) {
                    let name = part.split('}').next().unwrap();
                    assert!(other.contains(&format!("{{{name}}}")), "{msg:?} {lang:?}");
                }
            }
        }
    }

    #[test]
    fn every_setting_is_translated() {
        for def in gpt_load_actors::settings::SETTINGS.iter() {
            for lang in [Lang::ZhCn, Lang::JaJp] {
                assert!(
                    setting_text(def.id, lang).is_some(),
                    "{} in {lang:?}",
                    def.key
                );
            }
        }
    }

    #[actix_rt::test]
    async fn messages_follow_the_scoped_language() {
        assert_eq!(t(Msg::Success), "Success");
        let text = with_lang(Lang::ZhCn, async {
            tf(Msg::KeysRestored, &[("count", &3)])
        })
        .await;
        assert_eq!(text, "已恢复 3 个密钥");
    }
}
